//! A strict, stateful fake of the DigitalOcean v2 API calls provision makes: custom
//! certificates, CDN endpoints and Spaces keys.
//!
//! Every request is checked against `tests/apis/digitalocean.openapi.yaml`; the state
//! behaves like the real service where provision depends on it (unique certificate names,
//! a private key that must match its certificate, one CDN endpoint per origin, today's
//! refusal of Cloudflare Origin CA certificates on a custom domain, secrets shown once).

use super::common::{
    self, dispatch, now, rfc3339, strings_under, Answer, Call, Fault, Journal, Provider, Refusal,
};
use super::http::Server;
use super::openapi::{Checked, Direction, Operation, Spec};
use super::pki;
use jsonschema::Validator;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

const DIGITALOCEAN_YAML: &str = include_str!("../apis/digitalocean.openapi.yaml");

/// The certificate id DigitalOcean's CDN accepts for a certificate it manages itself.
pub const MANAGED_CERTIFICATE_ID: &str = "needs-cloudflare-cert";

const ORIGIN_CA_REFUSAL: &str = "invalid certificate issued by Cloudflare origin CA";

fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| Spec::load(DIGITALOCEAN_YAML))
}

fn error_validator() -> &'static Validator {
    static V: OnceLock<Validator> = OnceLock::new();
    V.get_or_init(|| spec().component_validator("#/components/schemas/error", Direction::Response))
}

#[derive(Debug)]
struct StoredCertificate {
    json: Value,
    issued_by_origin_ca: bool,
}

#[derive(Debug)]
struct StoredKey {
    /// As listed: no secret.
    json: Value,
}

#[derive(Debug)]
struct State {
    certificates: Vec<StoredCertificate>,
    endpoints: Vec<Value>,
    keys: Vec<StoredKey>,
    refuse_origin_ca_on_cdn: bool,
    /// The most items one list page holds, whatever `per_page` asks: 200, as the live API
    /// caps it; tests lower it to make short lists span pages.
    max_per_page: usize,
}

struct Inner {
    token: String,
    base_url: OnceLock<String>,
    journal: Mutex<Journal>,
    state: Mutex<State>,
    requests: AtomicU64,
}

/// The fake DigitalOcean API, on its own 127.0.0.1 port; stopped on drop.
pub struct FakeDigitalOcean {
    inner: Arc<Inner>,
    server: Server,
}

impl std::fmt::Debug for FakeDigitalOcean {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FakeDigitalOcean")
            .field("url", &self.server.base_url())
            .finish_non_exhaustive()
    }
}

impl FakeDigitalOcean {
    /// Starts the fake; it accepts only `Authorization: Bearer <token>`.
    pub fn start(token: &str) -> Self {
        let inner = Arc::new(Inner {
            token: token.to_string(),
            base_url: OnceLock::new(),
            journal: Mutex::new(Journal::default()),
            state: Mutex::new(State {
                certificates: Vec::new(),
                endpoints: Vec::new(),
                keys: Vec::new(),
                refuse_origin_ca_on_cdn: true,
                max_per_page: 200,
            }),
            requests: AtomicU64::new(0),
        });
        let handler_inner = inner.clone();
        let server = Server::start(Arc::new(move |request| dispatch(&*handler_inner, request)));
        let _ = inner.base_url.set(server.base_url());
        FakeDigitalOcean { inner, server }
    }

    /// Value for `DIGITALOCEAN_API_URL`, e.g. `http://127.0.0.1:4567`.
    pub fn url(&self) -> String {
        self.server.base_url()
    }

    /// Current certificates, as `GET /v2/certificates` lists them.
    pub fn certificates(&self) -> Vec<Value> {
        let state = self.inner.state.lock().unwrap();
        state.certificates.iter().map(|c| c.json.clone()).collect()
    }

    /// Current CDN endpoints, as `GET /v2/cdn/endpoints` lists them.
    pub fn cdn_endpoints(&self) -> Vec<Value> {
        self.inner.state.lock().unwrap().endpoints.clone()
    }

    /// Current Spaces keys, as `GET /v2/spaces/keys` lists them (no secrets).
    pub fn spaces_keys(&self) -> Vec<Value> {
        let state = self.inner.state.lock().unwrap();
        state.keys.iter().map(|k| k.json.clone()).collect()
    }

    /// Every request so far.
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

    /// The next `fault.times` requests matching `(method, path prefix)` get the fault.
    pub fn inject(&self, fault: Fault) {
        self.inner.journal.lock().unwrap().inject(fault, "");
    }

    /// Caps every list page at `n` items, whatever `per_page` asks (live: 200).
    pub fn set_max_per_page(&self, n: usize) {
        self.inner.state.lock().unwrap().max_per_page = n.max(1);
    }

    /// Whether the CDN refuses a Cloudflare Origin CA certificate on a custom domain
    /// (default true, like DigitalOcean today).
    pub fn set_refuse_origin_ca_on_cdn(&self, refuse: bool) {
        self.inner.state.lock().unwrap().refuse_origin_ca_on_cdn = refuse;
    }
}

fn error_id(status: u16) -> &'static str {
    match status {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        409 => "conflict",
        422 => "unprocessable_entity",
        429 => "too_many_requests",
        500 => "server_error",
        503 => "service_unavailable",
        _ => "error",
    }
}

/// DigitalOcean's error body: `{id, message, request_id}` (the live API adds a request id
/// to every error; clients must not need it).
fn error(status: u16, message: &str) -> Answer {
    Answer::json(status, error_json(status, message))
}

fn error_json(status: u16, message: &str) -> Value {
    json!({ "id": error_id(status), "message": message, "request_id": common::uuid() })
}

fn not_found() -> Answer {
    error(404, "The resource you were accessing could not be found.")
}

impl Provider for Inner {
    fn name(&self) -> &'static str {
        "digitalocean"
    }

    fn spec(&self) -> &'static Spec {
        spec()
    }

    fn prefix(&self) -> &'static str {
        ""
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
        let message = match status {
            401 => "Unable to authenticate you",
            _ => message,
        };
        error_json(status, message)
    }

    fn refusal_status(&self, refusal: Refusal) -> u16 {
        match refusal {
            Refusal::UnknownOperation => 404,
            Refusal::Unauthorized => 401,
            Refusal::InvalidParameters => 400,
            Refusal::InvalidBody => 422,
        }
    }

    fn common_headers(&self, _status: u16) -> Vec<(String, String)> {
        let used = self.requests.fetch_add(1, Ordering::SeqCst) + 1;
        let reset = now().unix_timestamp() + 3600;
        vec![
            ("ratelimit-limit".into(), "5000".into()),
            (
                "ratelimit-remaining".into(),
                5000u64.saturating_sub(used).to_string(),
            ),
            ("ratelimit-reset".into(), reset.to_string()),
        ]
    }

    fn sensitive_values(&self, body: &Value) -> Vec<String> {
        strings_under(body, &["private_key", "secret_key"])
    }

    fn extra_request_problems(&self, op: &Operation, checked: &Checked) -> Vec<String> {
        if !op.id.starts_with("spacesKey_") {
            return Vec::new();
        }
        checked.body["grants"]
            .as_array()
            .into_iter()
            .flatten()
            .enumerate()
            .filter_map(|(i, g)| {
                let p = g["permission"].as_str()?;
                (!PERMISSIONS.contains(&p)).then(|| {
                    format!(
                        "at /grants/{i}/permission: {p:?} is not one of \"read\", \"readwrite\", \"fullaccess\", \"\""
                    )
                })
            })
            .collect()
    }

    fn handle(&self, op: &Operation, checked: Checked) -> Answer {
        let mut state = self.state.lock().unwrap();
        let base = self.base_url.get().cloned().unwrap_or_default();
        let id = checked
            .path_params
            .values()
            .next()
            .cloned()
            .unwrap_or_default();
        let body = &checked.body;
        let query = &checked.query;
        match op.id.as_str() {
            "certificates_list" => {
                let items: Vec<Value> = state
                    .certificates
                    .iter()
                    .map(|c| c.json.clone())
                    .filter(|c| {
                        query
                            .get("name")
                            .is_none_or(|n| n.is_empty() || c["name"] == n.as_str())
                    })
                    .collect();
                list(
                    &base,
                    "/v2/certificates",
                    "certificates",
                    items,
                    query,
                    state.max_per_page,
                )
            }
            "certificates_create" => create_certificate(&mut state, body),
            "certificates_get" => match state.certificates.iter().find(|c| c.json["id"] == id) {
                Some(c) => Answer::json(200, json!({ "certificate": c.json })),
                None => not_found(),
            },
            "certificates_delete" => {
                let Some(index) = state.certificates.iter().position(|c| c.json["id"] == id) else {
                    return not_found();
                };
                if let Some(endpoint) = state.endpoints.iter().find(|e| e["certificate_id"] == id) {
                    return error(
                        403,
                        &format!(
                            "The certificate is in use by CDN endpoint {} and cannot be deleted.",
                            endpoint["id"].as_str().unwrap_or("")
                        ),
                    );
                }
                state.certificates.remove(index);
                Answer::empty(204)
            }
            "cdn_list_endpoints" => {
                let items = state.endpoints.clone();
                list(
                    &base,
                    "/v2/cdn/endpoints",
                    "endpoints",
                    items,
                    query,
                    state.max_per_page,
                )
            }
            "cdn_create_endpoint" => create_endpoint(&mut state, body),
            "cdn_get_endpoint" => match state.endpoints.iter().find(|e| e["id"] == id) {
                Some(e) => Answer::json(200, json!({ "endpoint": e })),
                None => not_found(),
            },
            "cdn_update_endpoints" => update_endpoint(&mut state, &id, body),
            "cdn_delete_endpoint" => {
                let before = state.endpoints.len();
                state.endpoints.retain(|e| e["id"] != id);
                if state.endpoints.len() == before {
                    not_found()
                } else {
                    Answer::empty(204)
                }
            }
            "cdn_purge_cache" => {
                if state.endpoints.iter().any(|e| e["id"] == id) {
                    Answer::empty(204)
                } else {
                    not_found()
                }
            }
            "spacesKey_list" => {
                let items: Vec<Value> = state
                    .keys
                    .iter()
                    .map(|k| k.json.clone())
                    .filter(|k| query.get("name").is_none_or(|n| k["name"] == n.as_str()))
                    .filter(|k| {
                        query.get("bucket").is_none_or(|b| {
                            k["grants"]
                                .as_array()
                                .is_some_and(|g| g.iter().any(|g| g["bucket"] == b.as_str()))
                        })
                    })
                    .filter(|k| {
                        query.get("permission").is_none_or(|p| {
                            k["grants"]
                                .as_array()
                                .is_some_and(|g| g.iter().any(|g| g["permission"] == p.as_str()))
                        })
                    })
                    .collect();
                list(
                    &base,
                    "/v2/spaces/keys",
                    "keys",
                    items,
                    query,
                    state.max_per_page,
                )
            }
            "spacesKey_create" => create_key(&mut state, body),
            "spacesKey_get" => match state.keys.iter().find(|k| k.json["access_key"] == id) {
                Some(k) => Answer::json(200, json!({ "key": k.json })),
                None => not_found(),
            },
            "spacesKey_update" | "spacesKey_patch" => {
                if let Some(problem) = check_grants(body) {
                    return problem;
                }
                let Some(key) = state.keys.iter_mut().find(|k| k.json["access_key"] == id) else {
                    return not_found();
                };
                if let Some(name) = body.get("name") {
                    key.json["name"] = name.clone();
                }
                if let Some(grants) = body.get("grants") {
                    key.json["grants"] = grants.clone();
                }
                Answer::json(200, json!({ "key": key.json }))
            }
            "spacesKey_delete" => {
                let before = state.keys.len();
                state.keys.retain(|k| k.json["access_key"] != id);
                if state.keys.len() == before {
                    not_found()
                } else {
                    Answer::empty(204)
                }
            }
            other => error(
                501,
                &format!("operation {other} is not implemented by the fake"),
            ),
        }
    }
}

/// A DigitalOcean list answer: one page of `items` under `key`, with `links` and `meta`.
fn list(
    base: &str,
    path: &str,
    key: &str,
    items: Vec<Value>,
    query: &BTreeMap<String, String>,
    max_per_page: usize,
) -> Answer {
    let page: usize = query
        .get("page")
        .and_then(|p| p.parse().ok())
        .unwrap_or(1)
        .max(1);
    let per_page: usize = query
        .get("per_page")
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(20)
        .clamp(1, max_per_page);
    let total = items.len();
    let last = total.div_ceil(per_page).max(1);
    let page_items: Vec<Value> = items
        .into_iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .collect();
    let url = |n: usize| format!("{base}{path}?page={n}&per_page={per_page}");
    let mut pages = serde_json::Map::new();
    if page > 1 {
        pages.insert("first".into(), url(1).into());
        pages.insert("prev".into(), url((page - 1).min(last)).into());
    }
    if page < last {
        pages.insert("next".into(), url(page + 1).into());
        pages.insert("last".into(), url(last).into());
    }
    let links = if pages.is_empty() {
        json!({})
    } else {
        json!({ "pages": pages })
    };
    Answer::json(
        200,
        json!({ key: page_items, "links": links, "meta": { "total": total } }),
    )
}

fn create_certificate(state: &mut State, body: &Value) -> Answer {
    let name = body["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        return error(422, "name is required");
    }
    if body["type"] == "lets_encrypt" || body.get("dns_names").is_some() {
        return error(
            422,
            "Let's Encrypt certificates need a domain whose DNS is managed by DigitalOcean",
        );
    }
    if state.certificates.iter().any(|c| c.json["name"] == name) {
        return error(
            422,
            &format!("A certificate with the name {name} already exists."),
        );
    }
    let leaf_pem = body["leaf_certificate"].as_str().unwrap_or_default();
    let key_pem = body["private_key"].as_str().unwrap_or_default();
    let leaf = match pki::parse_certificate(leaf_pem) {
        Ok(leaf) => leaf,
        Err(e) => return error(422, &format!("leaf_certificate: {e}")),
    };
    if let Some(chain) = body["certificate_chain"].as_str() {
        if let Err(e) = pki::parse_chain(chain) {
            return error(422, &format!("certificate_chain: {e}"));
        }
    }
    match pki::private_key_spki(key_pem) {
        Err(e) => return error(422, &format!("private_key: {e}")),
        Ok(spki) if spki != leaf.spki => {
            return error(422, "The private key does not match the leaf certificate.");
        }
        Ok(_) => {}
    }
    let json = json!({
        "id": common::uuid(),
        "name": name,
        "not_after": rfc3339(leaf.not_after),
        "sha1_fingerprint": leaf.sha1_fingerprint,
        "created_at": rfc3339(now()),
        "dns_names": leaf.dns_names,
        "state": "verified",
        "type": "custom",
    });
    state.certificates.push(StoredCertificate {
        json: json.clone(),
        issued_by_origin_ca: leaf.issued_by_origin_ca,
    });
    Answer::json(201, json!({ "certificate": json }))
}

/// Checks a custom domain and certificate pair; `None` when the CDN accepts it.
fn check_custom_domain(state: &State, custom_domain: &str, certificate_id: &str) -> Option<Answer> {
    if custom_domain.is_empty() && certificate_id.is_empty() {
        return None;
    }
    if custom_domain.is_empty() {
        return Some(error(
            422,
            "custom_domain is required when certificate_id is set",
        ));
    }
    if certificate_id.is_empty() {
        return Some(error(
            422,
            "certificate_id is required when custom_domain is set",
        ));
    }
    if certificate_id == MANAGED_CERTIFICATE_ID {
        return None;
    }
    let Some(cert) = state
        .certificates
        .iter()
        .find(|c| c.json["id"] == certificate_id)
    else {
        return Some(error(
            422,
            &format!("certificate {certificate_id} was not found"),
        ));
    };
    if cert.issued_by_origin_ca && state.refuse_origin_ca_on_cdn {
        return Some(error(422, ORIGIN_CA_REFUSAL));
    }
    let covers = cert.json["dns_names"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .any(|n| pki::name_matches(n, custom_domain));
    if !covers {
        return Some(error(
            422,
            &format!("certificate {certificate_id} does not cover {custom_domain}"),
        ));
    }
    None
}

fn create_endpoint(state: &mut State, body: &Value) -> Answer {
    let origin = body["origin"].as_str().unwrap_or_default();
    let Some(endpoint) = cdn_hostname(origin) else {
        return error(
            422,
            "origin must be the hostname of a Space: <bucket>.<region>.digitaloceanspaces.com",
        );
    };
    if state.endpoints.iter().any(|e| e["origin"] == origin) {
        return error(409, "endpoint already exists");
    }
    let custom_domain = body["custom_domain"].as_str().unwrap_or_default();
    let certificate_id = body["certificate_id"].as_str().unwrap_or_default();
    if let Some(problem) = check_custom_domain(state, custom_domain, certificate_id) {
        return problem;
    }
    let mut json = json!({
        "id": common::uuid(),
        "origin": origin,
        "endpoint": endpoint,
        "ttl": body["ttl"].as_u64().unwrap_or(3600),
        "created_at": rfc3339(now()),
    });
    if !custom_domain.is_empty() {
        json["custom_domain"] = custom_domain.into();
        json["certificate_id"] = certificate_id.into();
    }
    state.endpoints.push(json.clone());
    Answer::json(201, json!({ "endpoint": json }))
}

fn update_endpoint(state: &mut State, id: &str, body: &Value) -> Answer {
    let Some(index) = state.endpoints.iter().position(|e| e["id"] == id) else {
        return not_found();
    };
    let current = state.endpoints[index].clone();
    let custom_domain = body
        .get("custom_domain")
        .or(current.get("custom_domain"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let certificate_id = if body.get("custom_domain").is_some_and(|d| d == "") {
        String::new()
    } else {
        body.get("certificate_id")
            .or(current.get("certificate_id"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    if let Some(problem) = check_custom_domain(state, &custom_domain, &certificate_id) {
        return problem;
    }
    let endpoint = &mut state.endpoints[index];
    if let Some(ttl) = body.get("ttl") {
        endpoint["ttl"] = ttl.clone();
    }
    let object = endpoint.as_object_mut().expect("endpoint is an object");
    if custom_domain.is_empty() {
        object.remove("custom_domain");
        object.remove("certificate_id");
    } else {
        object.insert("custom_domain".into(), custom_domain.into());
        object.insert("certificate_id".into(), certificate_id.into());
    }
    Answer::json(200, json!({ "endpoint": endpoint }))
}

/// `<bucket>.<region>.digitaloceanspaces.com` -> `<bucket>.<region>.cdn.digitaloceanspaces.com`
fn cdn_hostname(origin: &str) -> Option<String> {
    let rest = origin.strip_suffix(".digitaloceanspaces.com")?;
    let (bucket, region) = rest.rsplit_once('.')?;
    if bucket.is_empty() || region.is_empty() || region == "cdn" {
        return None;
    }
    Some(format!("{bucket}.{region}.cdn.digitaloceanspaces.com"))
}

const PERMISSIONS: [&str; 4] = ["read", "readwrite", "fullaccess", ""];

/// The grant rules the schema does not spell out.
fn check_grants(body: &Value) -> Option<Answer> {
    let grants = body["grants"].as_array()?;
    for grant in grants {
        let permission = grant["permission"].as_str().unwrap_or_default();
        if !PERMISSIONS.contains(&permission) {
            return Some(error(
                400,
                &format!(
                    "invalid permission {permission:?}: use read, readwrite, fullaccess or an empty string"
                ),
            ));
        }
    }
    let full = grants.iter().any(|g| g["permission"] == "fullaccess");
    let scoped = grants
        .iter()
        .any(|g| g["permission"] == "read" || g["permission"] == "readwrite");
    if full && scoped {
        return Some(error(
            400,
            "cannot mix fullaccess permission with scoped permissions.",
        ));
    }
    None
}

fn create_key(state: &mut State, body: &Value) -> Answer {
    if let Some(problem) = check_grants(body) {
        return problem;
    }
    let name = body["name"].as_str().unwrap_or_default();
    if name.is_empty() {
        return error(422, "name is required");
    }
    let access_key: String = common::hex(&common::fresh_bytes())
        .to_uppercase()
        .chars()
        .take(18)
        .collect();
    let access_key = format!("DO{access_key}");
    let secret_key = format!(
        "{}{}",
        common::hex(&common::fresh_bytes()),
        &common::hex(&common::fresh_bytes())[..3]
    );
    let listed = json!({
        "name": name,
        "access_key": access_key,
        "grants": body.get("grants").cloned().unwrap_or_else(|| json!([])),
        "created_at": rfc3339(now()),
    });
    let mut created = listed.clone();
    created["secret_key"] = secret_key.into();
    state.keys.push(StoredKey { json: listed });
    Answer::json(201, json!({ "key": created }))
}
