//! A strict, stateful fake of the Cloudflare v4 API calls provision makes: zone lookup,
//! DNS records, Origin CA certificates and Workers script secrets.
//!
//! Every request is checked against `tests/apis/cloudflare.openapi.yaml`. The Origin CA
//! issues real certificates for the CSR's key, signed by a fake CA with Cloudflare's
//! subject, so a DigitalOcean fake (or a TLS library) can tell where they came from.

use super::common::{
    self, dispatch, now, rfc3339, strings_under, Answer, Call, Fault, Journal, Provider, Refusal,
};
use super::http::{Request, Server};
use super::openapi::{Checked, Direction, Operation, Spec};
use super::pki::{CsrKey, OriginCa};
use jsonschema::Validator;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

const CLOUDFLARE_YAML: &str = include_str!("../apis/cloudflare.openapi.yaml");

/// Where the API lives under the server root, as on api.cloudflare.com.
pub const API_PREFIX: &str = "/client/v4";

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| Spec::load(CLOUDFLARE_YAML))
}

fn error_validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| {
        spec().component_validator(
            "#/components/schemas/api-response-common-failure",
            Direction::Response,
        )
    })
}

#[derive(Debug)]
struct OriginCertificate {
    json: Value,
    revoked_at: Option<String>,
}

#[derive(Debug)]
struct Secret {
    name: String,
    text: String,
}

#[derive(Debug)]
struct State {
    zones: Vec<Value>,
    /// (zone id, record)
    records: Vec<(String, Value)>,
    certificates: Vec<OriginCertificate>,
    /// (account id, script name) -> secrets; a key exists once the script is deployed.
    secrets: BTreeMap<(String, String), Vec<Secret>>,
    /// The most items one list page holds, whatever `per_page` asks (the live API caps it
    /// at each list's maximum; tests lower it to make short lists span pages).
    max_per_page: Option<usize>,
}

struct Inner {
    token: String,
    journal: Mutex<Journal>,
    state: Mutex<State>,
    ca: OriginCa,
}

/// The fake Cloudflare API, on its own 127.0.0.1 port; stopped on drop.
pub struct FakeCloudflare {
    inner: Arc<Inner>,
    server: Server,
    account_id: String,
}

impl std::fmt::Debug for FakeCloudflare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeCloudflare")
            .field("url", &self.url())
            .finish_non_exhaustive()
    }
}

impl FakeCloudflare {
    /// Starts the fake with these zones (e.g. `["example.com"]`); it accepts only
    /// `Authorization: Bearer <token>`.
    pub fn start(token: &str, zones: &[&str]) -> Self {
        let account_id = common::cf_id();
        let created = rfc3339(now());
        let zones = zones
            .iter()
            .map(|name| {
                json!({
                    "id": common::cf_id(),
                    "name": name.to_ascii_lowercase(),
                    "status": "active",
                    "paused": false,
                    "type": "full",
                    "development_mode": 0,
                    "owner": { "id": common::cf_id(), "name": "owner@example.com", "type": "user" },
                    "account": { "id": account_id, "name": "Fake account" },
                    "meta": { "cdn_only": false, "dns_only": false, "foundation_dns": false,
                              "page_rule_quota": 3, "phishing_detected": false, "step": 2,
                              "custom_certificate_quota": 0 },
                    "name_servers": ["bob.ns.cloudflare.com", "lola.ns.cloudflare.com"],
                    "original_name_servers": null,
                    "original_registrar": null,
                    "original_dnshost": null,
                    "created_on": created,
                    "modified_on": created,
                    "activated_on": created,
                })
            })
            .collect();
        let inner = Arc::new(Inner {
            token: token.to_string(),
            journal: Mutex::new(Journal::default()),
            state: Mutex::new(State {
                zones,
                records: Vec::new(),
                certificates: Vec::new(),
                secrets: BTreeMap::new(),
                max_per_page: None,
            }),
            ca: OriginCa::new(),
        });
        let handler_inner = inner.clone();
        let server = Server::start(Arc::new(move |request| dispatch(&*handler_inner, request)));
        FakeCloudflare {
            inner,
            server,
            account_id,
        }
    }

    /// Value for `CLOUDFLARE_API_URL`, e.g. `http://127.0.0.1:4567/client/v4`.
    pub fn url(&self) -> String {
        format!("{}{API_PREFIX}", self.server.base_url())
    }

    /// The account that owns the zones and the Worker scripts.
    pub fn account_id(&self) -> String {
        self.account_id.clone()
    }

    /// `wrangler deploy`, as far as the secrets API can tell: the script exists from now on.
    /// Until then, its secrets answer 404 with code 10007, as the live API does.
    pub fn deploy_script(&self, script: &str) {
        let mut state = self.inner.state.lock().unwrap();
        state
            .secrets
            .entry((self.account_id.clone(), script.to_string()))
            .or_default();
    }

    /// `wrangler delete`: the script and its secrets are gone; its secrets answer 10007 again.
    pub fn delete_script(&self, script: &str) {
        let mut state = self.inner.state.lock().unwrap();
        state
            .secrets
            .remove(&(self.account_id.clone(), script.to_string()));
    }

    /// Adds a zone to the account (e.g. `co.uk` beside `example.co.uk`); returns its id.
    pub fn add_zone(&self, name: &str) -> String {
        let id = common::cf_id();
        let mut state = self.inner.state.lock().unwrap();
        let mut zone = state.zones[0].clone();
        zone["id"] = id.clone().into();
        zone["name"] = name.to_ascii_lowercase().into();
        state.zones.push(zone);
        id
    }

    /// Caps every list page at `n` items, whatever `per_page` asks.
    pub fn set_max_per_page(&self, n: usize) {
        self.inner.state.lock().unwrap().max_per_page = Some(n.max(1));
    }

    /// The id of a zone, by name.
    pub fn zone_id(&self, name: &str) -> Option<String> {
        let state = self.inner.state.lock().unwrap();
        state
            .zones
            .iter()
            .find(|z| z["name"] == name)
            .and_then(|z| z["id"].as_str().map(str::to_string))
    }

    /// The fake Origin CA's own certificate, PEM.
    pub fn origin_ca_certificate(&self) -> String {
        self.inner.ca.certificate_pem()
    }

    /// Origin CA certificates that are not revoked, as the API shows them.
    pub fn origin_certificates(&self) -> Vec<Value> {
        let state = self.inner.state.lock().unwrap();
        state
            .certificates
            .iter()
            .filter(|c| c.revoked_at.is_none())
            .map(|c| c.json.clone())
            .collect()
    }

    /// Every DNS record of every zone.
    pub fn dns_records(&self) -> Vec<Value> {
        let state = self.inner.state.lock().unwrap();
        state.records.iter().map(|(_, r)| r.clone()).collect()
    }

    /// The names of a Worker script's secrets.
    pub fn worker_secrets(&self, account: &str, script: &str) -> Vec<String> {
        let state = self.inner.state.lock().unwrap();
        state
            .secrets
            .get(&(account.to_string(), script.to_string()))
            .map(|s| s.iter().map(|s| s.name.clone()).collect())
            .unwrap_or_default()
    }

    /// A secret's value, for asserting on; never print it.
    pub fn secret_value(&self, account: &str, script: &str, name: &str) -> Option<String> {
        let state = self.inner.state.lock().unwrap();
        state
            .secrets
            .get(&(account.to_string(), script.to_string()))?
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.text.clone())
    }

    /// Every request so far (paths without `/client/v4`).
    pub fn calls(&self) -> Vec<Call> {
        self.inner.journal.lock().unwrap().calls.clone()
    }

    /// Every request that broke the API description or the auth rules, and every answer of
    /// the fake that broke it.
    pub fn violations(&self) -> Vec<String> {
        self.inner.journal.lock().unwrap().violations.clone()
    }

    /// Drops every pending fault: the service answers again.
    pub fn clear_faults(&self) {
        self.inner.journal.lock().unwrap().clear_faults();
    }

    /// The next `fault.times` requests matching `(method, path prefix)` get the fault; the
    /// prefix is an API path such as `/zones/` (a leading `/client/v4` is ignored).
    pub fn inject(&self, fault: Fault) {
        self.inner.journal.lock().unwrap().inject(fault, API_PREFIX);
    }
}

fn failure(status: u16, code: u32, message: &str) -> Answer {
    Answer::json(status, failure_body(code, message))
}

fn failure_body(code: u32, message: &str) -> Value {
    json!({
        "success": false,
        "errors": [{ "code": code, "message": message }],
        "messages": [],
        "result": null,
    })
}

fn success(result: Value) -> Answer {
    Answer::json(
        200,
        json!({ "success": true, "errors": [], "messages": [], "result": result }),
    )
}

fn success_list(
    items: Vec<Value>,
    query: &BTreeMap<String, String>,
    default_per_page: usize,
    max_per_page: Option<usize>,
) -> Answer {
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse::<f64>().ok())
        .map(|p| p as usize)
        .unwrap_or(1)
        .max(1);
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse::<f64>().ok())
        .map(|p| p as usize)
        .unwrap_or(default_per_page)
        .max(1)
        .min(max_per_page.unwrap_or(usize::MAX));
    let total = items.len();
    let result: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    Answer::json(
        200,
        json!({
            "success": true,
            "errors": [],
            "messages": [],
            "result": result,
            "result_info": {
                "page": page,
                "per_page": per_page,
                "count": result.len(),
                "total_count": total,
                "total_pages": total.div_ceil(per_page).max(1),
            },
        }),
    )
}

/// A Worker script that was never deployed: the live secrets API answers 404 with code
/// 10007 and the message `workers.api.error.script_not_found`.
fn script_not_found() -> Answer {
    failure(404, 10007, "workers.api.error.script_not_found")
}

fn not_found(what: &str) -> Answer {
    failure(
        404,
        7003,
        &format!("Could not find {what}; perhaps your object identifier is invalid?"),
    )
}

/// CF names: lower case, no trailing dot, `@` for the apex, relative names completed.
fn full_name(name: &str, zone: &str) -> String {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    if name == "@" || name.is_empty() {
        zone.to_string()
    } else if name == zone || name.ends_with(&format!(".{zone}")) {
        name
    } else {
        format!("{name}.{zone}")
    }
}

const PROXIABLE: [&str; 3] = ["A", "AAAA", "CNAME"];

impl Provider for Inner {
    fn name(&self) -> &'static str {
        "cloudflare"
    }

    fn spec(&self) -> &'static Spec {
        spec()
    }

    fn prefix(&self) -> &'static str {
        API_PREFIX
    }

    fn token(&self) -> &str {
        &self.token
    }

    fn journal(&self) -> &Mutex<Journal> {
        &self.journal
    }

    fn error_validator(&self) -> &Validator {
        error_validator()
    }

    fn error_body(&self, status: u16, message: &str) -> Value {
        match status {
            401 | 403 => failure_body(10000, "Authentication error"),
            404 if message.starts_with("no such operation") => {
                failure_body(7000, "No route for that URI")
            }
            405 => failure_body(7001, "Method not allowed for this route"),
            429 => failure_body(
                10000,
                "Rate limited. Please wait and consider throttling your request speed",
            ),
            s if s >= 500 => failure_body(10002, message),
            _ => failure_body(1001, message),
        }
    }

    fn refusal_status(&self, refusal: Refusal) -> u16 {
        match refusal {
            Refusal::UnknownOperation => 404,
            Refusal::Unauthorized => 401,
            Refusal::InvalidParameters | Refusal::InvalidBody => 400,
        }
    }

    fn common_headers(&self, _status: u16) -> Vec<(String, String)> {
        vec![("cf-ray".into(), format!("{}-FRA", &common::cf_id()[..16]))]
    }

    fn header_violations(&self, request: &Request) -> Vec<String> {
        ["x-auth-email", "x-auth-key", "x-auth-user-service-key"]
            .iter()
            .filter(|h| request.header(h).is_some())
            .map(|h| format!("sends the {h} header; provision must use an API token only"))
            .collect()
    }

    fn sensitive_values(&self, body: &Value) -> Vec<String> {
        strings_under(body, &["text", "key_base64"])
    }

    fn implements(&self, op: &Operation) -> bool {
        !op.id.starts_with("worker-domain-") && !op.id.starts_with("worker-routes-")
    }

    fn handle(&self, op: &Operation, checked: Checked) -> Answer {
        let mut state = self.state.lock().unwrap();
        let params = &checked.path_params;
        let query = &checked.query;
        let body = &checked.body;
        let param = |name: &str| params.get(name).cloned().unwrap_or_default();
        match op.id.as_str() {
            "zones-get" => {
                let zones: Vec<Value> = state
                    .zones
                    .iter()
                    .filter(|z| {
                        query.get("name").is_none_or(|n| {
                            let zone = z["name"].as_str().unwrap_or("");
                            match n.split_once(':') {
                                Some(("contains", v)) => zone.contains(v),
                                Some(("starts_with", v)) => zone.starts_with(v),
                                Some(("ends_with", v)) => zone.ends_with(v),
                                Some(("equal", v)) => zone == v,
                                _ => zone == n.to_ascii_lowercase(),
                            }
                        })
                    })
                    .filter(|z| {
                        query
                            .get("status")
                            .is_none_or(|s| z["status"] == s.as_str())
                    })
                    .cloned()
                    .collect();
                success_list(zones, query, 20, state.max_per_page)
            }
            "dns-records-for-a-zone-list-dns-records" => {
                let zone_id = param("zone_id");
                if zone_name(&state, &zone_id).is_none() {
                    return not_found("zone");
                }
                // The filter is the full name, as stored (not completed like a new record's).
                let name = query.get("name").map(|n| n.to_ascii_lowercase());
                let records: Vec<Value> = state
                    .records
                    .iter()
                    .filter(|(z, _)| *z == zone_id)
                    .map(|(_, r)| r)
                    .filter(|r| name.as_ref().is_none_or(|n| r["name"] == n.as_str()))
                    .filter(|r| query.get("type").is_none_or(|t| r["type"] == t.as_str()))
                    .filter(|r| {
                        query
                            .get("content")
                            .is_none_or(|c| r["content"] == c.as_str())
                    })
                    .filter(|r| {
                        query
                            .get("proxied")
                            .is_none_or(|p| r["proxied"].as_bool() == Some(p == "true"))
                    })
                    .cloned()
                    .collect();
                success_list(records, query, 100, state.max_per_page)
            }
            "dns-records-for-a-zone-create-dns-record" => {
                let zone_id = param("zone_id");
                let Some(zone) = zone_name(&state, &zone_id) else {
                    return not_found("zone");
                };
                let stamp = rfc3339(now());
                let mut record = json!({
                    "id": common::cf_id(),
                    "zone_id": zone_id,
                    "zone_name": zone,
                    "created_on": stamp,
                    "modified_on": stamp,
                    "meta": { "auto_added": false, "source": "primary" },
                    "tags": [],
                    "ttl": 1,
                    "proxied": false,
                });
                merge_record(&mut record, body, &zone);
                if let Some(problem) = check_record(&state, &zone_id, &record, None) {
                    return problem;
                }
                state.records.push((zone_id, record.clone()));
                success(record)
            }
            "dns-records-for-a-zone-dns-record-details" => {
                match find_record(&state, &param("zone_id"), &param("dns_record_id")) {
                    Some(i) => success(state.records[i].1.clone()),
                    None => not_found("DNS record"),
                }
            }
            "dns-records-for-a-zone-update-dns-record"
            | "dns-records-for-a-zone-patch-dns-record" => {
                let zone_id = param("zone_id");
                let Some(zone) = zone_name(&state, &zone_id) else {
                    return not_found("zone");
                };
                let Some(index) = find_record(&state, &zone_id, &param("dns_record_id")) else {
                    return not_found("DNS record");
                };
                let current = state.records[index].1.clone();
                let mut record = if op.method == "PUT" {
                    let mut fresh = json!({
                        "id": current["id"], "zone_id": zone_id, "zone_name": zone,
                        "created_on": current["created_on"], "meta": current["meta"],
                        "tags": [], "ttl": 1, "proxied": false,
                    });
                    merge_record(&mut fresh, body, &zone);
                    fresh
                } else {
                    let mut patched = current.clone();
                    merge_record(&mut patched, body, &zone);
                    patched
                };
                record["modified_on"] = rfc3339(now()).into();
                if let Some(problem) = check_record(&state, &zone_id, &record, Some(index)) {
                    return problem;
                }
                state.records[index].1 = record.clone();
                success(record)
            }
            "dns-records-for-a-zone-delete-dns-record" => {
                let Some(index) = find_record(&state, &param("zone_id"), &param("dns_record_id"))
                else {
                    return not_found("DNS record");
                };
                let (_, record) = state.records.remove(index);
                success(json!({ "id": record["id"] }))
            }
            "origin-ca-list-certificates" => {
                let zone_id = query.get("zone_id").cloned().unwrap_or_default();
                let Some(zone) = zone_name(&state, &zone_id) else {
                    return failure(400, 1001, "Invalid zone_id");
                };
                let certificates: Vec<Value> = state
                    .certificates
                    .iter()
                    .filter(|c| c.revoked_at.is_none())
                    .filter(|c| {
                        c.json["hostnames"]
                            .as_array()
                            .into_iter()
                            .flatten()
                            .filter_map(Value::as_str)
                            .any(|h| in_zone(h, &zone))
                    })
                    .map(|c| c.json.clone())
                    .collect();
                success_list(certificates, query, 20, state.max_per_page)
            }
            "origin-ca-create-certificate" => self.create_origin_certificate(&mut state, body),
            "origin-ca-get-certificate" => {
                let id = param("certificate_id");
                match state
                    .certificates
                    .iter()
                    .find(|c| c.json["id"] == id.as_str())
                {
                    Some(c) => {
                        let mut json = c.json.clone();
                        if let Some(at) = &c.revoked_at {
                            json["revoked_at"] = at.clone().into();
                        }
                        success(json)
                    }
                    None => failure(404, 1003, "Certificate not found"),
                }
            }
            "origin-ca-revoke-certificate" => {
                let id = param("certificate_id");
                let Some(c) = state
                    .certificates
                    .iter_mut()
                    .find(|c| c.json["id"] == id.as_str())
                else {
                    return failure(404, 1003, "Certificate not found");
                };
                if c.revoked_at.is_some() {
                    return failure(400, 1008, "This certificate has already been revoked");
                }
                let at = rfc3339(now());
                c.revoked_at = Some(at.clone());
                success(json!({ "id": id, "revoked_at": at }))
            }
            "worker-list-script-secrets" => {
                let key = (param("account_id"), param("script_name"));
                let Some(secrets) = state.secrets.get(&key) else {
                    return script_not_found();
                };
                let secrets: Vec<Value> = secrets
                    .iter()
                    .map(|s| json!({ "name": s.name, "type": "secret_text" }))
                    .collect();
                success(Value::Array(secrets))
            }
            "worker-put-script-secret" => {
                if body["type"] != "secret_text" {
                    return failure(400, 10021, "only secret_text secrets are supported here");
                }
                let name = body["name"].as_str().unwrap_or_default().to_string();
                let text = body["text"].as_str().unwrap_or_default().to_string();
                if name.is_empty() {
                    return failure(400, 10021, "secret name is required");
                }
                let key = (param("account_id"), param("script_name"));
                let Some(secrets) = state.secrets.get_mut(&key) else {
                    return script_not_found();
                };
                match secrets.iter_mut().find(|s| s.name == name) {
                    Some(s) => s.text = text,
                    None => secrets.push(Secret {
                        name: name.clone(),
                        text,
                    }),
                }
                success(json!({ "name": name, "type": "secret_text" }))
            }
            "worker-get-script-secret" => {
                let key = (param("account_id"), param("script_name"));
                let name = param("secret_name");
                let Some(secrets) = state.secrets.get(&key) else {
                    return script_not_found();
                };
                match secrets.iter().find(|s| s.name == name) {
                    Some(s) => success(json!({ "name": s.name, "type": "secret_text" })),
                    None => failure(404, 10056, "Secret not found"),
                }
            }
            "worker-delete-script-secret" => {
                let key = (param("account_id"), param("script_name"));
                let name = param("secret_name");
                let Some(secrets) = state.secrets.get_mut(&key) else {
                    return script_not_found();
                };
                let before = secrets.len();
                secrets.retain(|s| s.name != name);
                if secrets.len() == before {
                    return failure(404, 10056, "Secret not found");
                }
                success(Value::Null)
            }
            other => failure(
                501,
                10002,
                &format!("operation {other} is not implemented by the fake"),
            ),
        }
    }
}

impl Inner {
    fn create_origin_certificate(&self, state: &mut State, body: &Value) -> Answer {
        let hostnames: Vec<String> = body["hostnames"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|h| h.as_str().unwrap_or_default().to_ascii_lowercase())
            .collect();
        if hostnames.is_empty() || hostnames.iter().any(String::is_empty) {
            return failure(400, 1010, "hostnames must be a non-empty list of hostnames");
        }
        for h in &hostnames {
            let zones = state.zones.iter().filter_map(|z| z["name"].as_str());
            if !zones.clone().any(|z| in_zone(h, z)) {
                return failure(
                    400,
                    1010,
                    &format!(
                        "Failed to validate requested hostname {h}: This zone is either not part of your account, or you do not have access to it."
                    ),
                );
            }
        }
        let csr = body["csr"].as_str().unwrap_or_default();
        let key = match OriginCa::csr_key(csr) {
            Ok(k) => k,
            Err(e) => return failure(400, 1010, &format!("Failed to read CSR: {e}")),
        };
        let request_type = body["request_type"].as_str().unwrap_or_default();
        match (request_type, key) {
            ("origin-rsa", CsrKey::Rsa) | ("origin-ecc", CsrKey::Ecdsa) => {}
            ("keyless-certificate", _) => {
                return failure(
                    400,
                    1010,
                    "keyless certificates are not offered on this account",
                )
            }
            _ => {
                return failure(
                    400,
                    1010,
                    &format!("The CSR's key type does not match request_type {request_type}"),
                )
            }
        }
        let validity = body["requested_validity"].as_f64().unwrap_or(5475.0) as i64;
        // A decimal serial, as Cloudflare's ids are, within the schema's 32 characters.
        let bytes = common::fresh_bytes();
        let serial_number =
            u128::from_be_bytes(bytes[..16].try_into().expect("16 bytes")) % 10u128.pow(30);
        let id = format!("{:032}", serial_number + 10u128.pow(31));
        let serial = (serial_number + 10u128.pow(31)).to_be_bytes();
        let first = serial.iter().position(|b| *b != 0).unwrap_or(15);
        let (pem, not_after) = match self.ca.issue(csr, &hostnames, validity, &serial[first..]) {
            Ok(issued) => issued,
            Err(e) => return failure(400, 1010, &e),
        };
        let json = json!({
            "id": id,
            "certificate": pem,
            "hostnames": hostnames,
            // Go's time.Time.String() layout, as the live API answers (not RFC 3339).
            "expires_on": common::go_time(not_after),
            "request_type": request_type,
            "requested_validity": validity,
            "csr": csr,
        });
        state.certificates.push(OriginCertificate {
            json: json.clone(),
            revoked_at: None,
        });
        success(json)
    }
}

fn zone_name(state: &State, zone_id: &str) -> Option<String> {
    state
        .zones
        .iter()
        .find(|z| z["id"] == zone_id)
        .and_then(|z| z["name"].as_str().map(str::to_string))
}

fn in_zone(host: &str, zone: &str) -> bool {
    let host = host.strip_prefix("*.").unwrap_or(host);
    host == zone || host.ends_with(&format!(".{zone}"))
}

fn find_record(state: &State, zone_id: &str, record_id: &str) -> Option<usize> {
    state
        .records
        .iter()
        .position(|(z, r)| z == zone_id && r["id"] == record_id)
}

/// Copies the client's fields onto a record, completing the name.
fn merge_record(record: &mut Value, body: &Value, zone: &str) {
    for key in [
        "type", "name", "content", "ttl", "proxied", "comment", "tags", "priority", "data",
    ] {
        if let Some(value) = body.get(key) {
            if !value.is_null() {
                record[key] = value.clone();
            }
        }
    }
    if let Some(name) = record["name"].as_str() {
        record["name"] = full_name(name, zone).into();
    }
    let proxiable = PROXIABLE.contains(&record["type"].as_str().unwrap_or(""));
    record["proxiable"] = proxiable.into();
    if record["proxied"] == true {
        // Proxied records always have an automatic TTL.
        record["ttl"] = 1.into();
    }
}

/// The zone's rules for a new or changed record; `skip` is the record being replaced.
fn check_record(
    state: &State,
    zone_id: &str,
    record: &Value,
    skip: Option<usize>,
) -> Option<Answer> {
    if record["proxied"] == true && record["proxiable"] != true {
        return Some(failure(400, 9004, "This record type cannot be proxied."));
    }
    let others = state
        .records
        .iter()
        .enumerate()
        .filter(|(i, (z, r))| Some(*i) != skip && z == zone_id && r["name"] == record["name"])
        .map(|(_, (_, r))| r);
    for other in others {
        if other["type"] == record["type"] && other["content"] == record["content"] {
            return Some(failure(400, 81058, "An identical record already exists."));
        }
        if other["type"] == "CNAME" || record["type"] == "CNAME" {
            return Some(failure(
                400,
                81053,
                "An A, AAAA, or CNAME record with that host already exists.",
            ));
        }
    }
    None
}
