//! Cloudflare API v4: zones, DNS records, Origin CA certificates and Workers secrets.
//!
//! Reference: <https://developers.cloudflare.com/api/>. Auth is
//! `Authorization: Bearer $CLOUDFLARE_API_TOKEN` everywhere, Origin CA included (the old
//! `X-Auth-User-Service-Key` is retired). Every answer is an envelope
//! `{success, errors: [{code, message}], messages, result}`.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::send::{Auth, Sender};
use super::{all_pages, json_request, parse_json, segment, ApiError, Call, HttpSettings, Page};
use crate::env::Secret;

const PROVIDER: &str = "Cloudflare";

/// The Cloudflare API client: every call goes through [`Client::send`] (or [`Client::list`]).
#[derive(Debug)]
pub struct Client {
    sender: Sender,
}

#[derive(Debug, Deserialize)]
struct Envelope<T> {
    success: bool,
    #[serde(default)]
    errors: Vec<CfError>,
    result: Option<T>,
    /// On lists: `{page, per_page, count, total_count, total_pages}` (some lists omit parts).
    #[serde(default)]
    result_info: Option<ResultInfo>,
}

/// A list answer's paging facts.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
struct ResultInfo {
    page: Option<u32>,
    per_page: Option<u32>,
    count: Option<u32>,
    total_pages: Option<u32>,
}

impl ResultInfo {
    /// Whether another page follows: `total_pages` when given, else a full page.
    fn more(&self, page: u32, got: usize) -> bool {
        match (self.total_pages, self.per_page.or(self.count)) {
            (Some(total), _) => self.page.unwrap_or(page) < total,
            (None, Some(per_page)) => per_page > 0 && got >= per_page as usize,
            (None, None) => false,
        }
    }
}

/// A list call that takes a page number.
pub trait PagedCall: Call {
    /// The same call for page `page` (from 1).
    fn page(&self, page: u32) -> Self;
}

#[derive(Debug, Deserialize)]
struct CfError {
    code: Option<i64>,
    message: String,
}

impl Client {
    pub fn new(base_url: &str, token: Secret, settings: HttpSettings) -> Result<Self, ApiError> {
        Ok(Self {
            sender: Sender::new(PROVIDER, base_url, Auth::Bearer(token), settings)?,
        })
    }

    /// Sends `call` and returns the envelope's `result`.
    pub fn send<C: Call>(&self, call: &C) -> Result<C::Response, ApiError>
    where
        C::Response: DeserializeOwned,
    {
        self.send_envelope(call).map(|(result, _)| result)
    }

    /// Sends a list call page by page to its last page (`result_info`), within
    /// `PROVISION_MAX_PAGES`.
    pub fn list<T, C>(&self, call: &C) -> Result<Vec<T>, ApiError>
    where
        T: DeserializeOwned,
        C: PagedCall<Response = Vec<T>>,
    {
        all_pages(
            PROVIDER,
            &call.path(),
            self.sender.settings().max_pages,
            |page| {
                let (items, info) = self.send_envelope(&call.page(page))?;
                let more = info.unwrap_or_default().more(page, items.len());
                Ok(Page { items, more })
            },
        )
    }

    fn send_envelope<C: Call>(
        &self,
        call: &C,
    ) -> Result<(C::Response, Option<ResultInfo>), ApiError>
    where
        C::Response: DeserializeOwned,
    {
        let request = json_request(call);
        let answer = self.sender.send(&request)?;
        let status = answer.status;
        let failure = |message: String, codes: Vec<String>| ApiError::Status {
            provider: PROVIDER,
            call: request.call.clone(),
            resource: request.resource.clone(),
            status,
            codes,
            message,
        };
        if answer.is_success() {
            let envelope: Envelope<C::Response> = parse_json(PROVIDER, &request, &answer.body)?;
            let info = envelope.result_info;
            return match (envelope.success, envelope.result) {
                (true, Some(result)) => Ok((result, info)),
                (true, None) => parse_json(PROVIDER, &request, b"null").map(|r| (r, info)),
                (false, _) => Err(failure(
                    describe(&envelope.errors),
                    envelope
                        .errors
                        .iter()
                        .filter_map(|e| e.code)
                        .map(|c| c.to_string())
                        .collect(),
                )),
            };
        }
        Err(
            match serde_json::from_slice::<Envelope<serde::de::IgnoredAny>>(&answer.body) {
                Ok(e) => failure(
                    describe(&e.errors),
                    e.errors
                        .iter()
                        .filter_map(|e| e.code)
                        .map(|c| c.to_string())
                        .collect(),
                ),
                Err(_) => failure("(no error message in the answer)".to_owned(), Vec::new()),
            },
        )
    }
}

fn describe(errors: &[CfError]) -> String {
    if errors.is_empty() {
        return "(no error message in the answer)".to_owned();
    }
    errors
        .iter()
        .map(|e| match e.code {
            Some(code) => format!("{} (code {code})", e.message),
            None => e.message.clone(),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A zone.
#[derive(Debug, Clone, Deserialize)]
pub struct Zone {
    pub id: String,
    pub name: String,
}

/// List the account's zones (all of them: the hostname's zone is the longest one that is a
/// suffix of it).
/// <https://developers.cloudflare.com/api/resources/zones/methods/list/>
#[derive(Debug)]
pub struct ListZones {
    pub page: u32,
}

impl ListZones {
    /// The page size (the API's maximum for zones).
    pub const PER_PAGE: u32 = 50;
}

impl Call for ListZones {
    type Response = Vec<Zone>;
    fn method(&self) -> &'static str {
        "GET"
    }
    fn path(&self) -> String {
        "/zones".into()
    }
    fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("page", self.page.to_string()),
            ("per_page", Self::PER_PAGE.to_string()),
        ]
    }
}

impl PagedCall for ListZones {
    fn page(&self, page: u32) -> Self {
        Self { page }
    }
}

/// A DNS record.
#[derive(Debug, Clone, Deserialize)]
pub struct DnsRecord {
    pub id: String,
    #[serde(rename = "type")]
    pub record_type: String,
    pub name: String,
    pub content: String,
    #[serde(default)]
    pub proxied: Option<bool>,
    /// Absent, `null` or a string; provision marks its own record here.
    #[serde(default)]
    pub comment: Option<String>,
}

/// List the DNS records with a name.
/// <https://developers.cloudflare.com/api/resources/dns/subresources/records/methods/list/>
#[derive(Debug)]
pub struct ListDnsRecords<'a> {
    pub zone_id: &'a str,
    pub name: &'a str,
    pub page: u32,
}

impl Call for ListDnsRecords<'_> {
    type Response = Vec<DnsRecord>;
    fn method(&self) -> &'static str {
        "GET"
    }
    fn path(&self) -> String {
        format!("/zones/{}/dns_records", segment(self.zone_id))
    }
    fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("name", self.name.to_owned()),
            ("page", self.page.to_string()),
            ("per_page", "100".into()),
        ]
    }
}

impl PagedCall for ListDnsRecords<'_> {
    fn page(&self, page: u32) -> Self {
        Self { page, ..*self }
    }
}

#[derive(Debug, Serialize)]
struct CnameBody<'a> {
    #[serde(rename = "type")]
    record_type: &'static str,
    name: &'a str,
    content: &'a str,
    proxied: bool,
    ttl: u32,
    comment: &'a str,
}

/// Create a proxied CNAME record (TTL automatic), with provision's comment.
/// <https://developers.cloudflare.com/api/resources/dns/subresources/records/methods/create/>
#[derive(Debug)]
pub struct CreateCname<'a> {
    pub zone_id: &'a str,
    pub name: &'a str,
    pub target: &'a str,
}

impl Call for CreateCname<'_> {
    type Response = DnsRecord;
    fn method(&self) -> &'static str {
        "POST"
    }
    fn path(&self) -> String {
        format!("/zones/{}/dns_records", segment(self.zone_id))
    }
    fn body(&self) -> Option<Zeroizing<String>> {
        Some(Zeroizing::new(
            serde_json::json!(CnameBody {
                record_type: "CNAME",
                name: self.name,
                content: self.target,
                proxied: true,
                ttl: 1,
                comment: crate::observe::DNS_COMMENT,
            })
            .to_string(),
        ))
    }
}

/// Overwrite a DNS record with a proxied CNAME.
/// <https://developers.cloudflare.com/api/resources/dns/subresources/records/methods/update/>
#[derive(Debug)]
pub struct UpdateCname<'a> {
    pub zone_id: &'a str,
    pub id: &'a str,
    pub name: &'a str,
    pub target: &'a str,
}

impl Call for UpdateCname<'_> {
    type Response = DnsRecord;
    fn method(&self) -> &'static str {
        "PUT"
    }
    fn path(&self) -> String {
        format!(
            "/zones/{}/dns_records/{}",
            segment(self.zone_id),
            segment(self.id)
        )
    }
    fn body(&self) -> Option<Zeroizing<String>> {
        CreateCname {
            zone_id: self.zone_id,
            name: self.name,
            target: self.target,
        }
        .body()
    }
}

/// Delete a DNS record.
/// <https://developers.cloudflare.com/api/resources/dns/subresources/records/methods/delete/>
#[derive(Debug)]
pub struct DeleteDnsRecord<'a> {
    pub zone_id: &'a str,
    pub id: &'a str,
}

impl Call for DeleteDnsRecord<'_> {
    type Response = serde::de::IgnoredAny;
    fn method(&self) -> &'static str {
        "DELETE"
    }
    fn path(&self) -> String {
        format!(
            "/zones/{}/dns_records/{}",
            segment(self.zone_id),
            segment(self.id)
        )
    }
}

/// An Origin CA certificate.
#[derive(Debug, Clone, Deserialize)]
pub struct OriginCertificate {
    pub id: String,
    #[serde(default)]
    pub hostnames: Vec<String>,
    #[serde(default)]
    pub expires_on: Option<String>,
    #[serde(default)]
    pub certificate: Option<String>,
    #[serde(default)]
    pub csr: Option<String>,
}

/// List a zone's Origin CA certificates.
/// <https://developers.cloudflare.com/api/resources/origin_ca_certificates/methods/list/>
#[derive(Debug)]
pub struct ListOriginCertificates<'a> {
    pub zone_id: &'a str,
    pub page: u32,
}

impl ListOriginCertificates<'_> {
    /// The page size.
    pub const PER_PAGE: usize = 50;
}

impl PagedCall for ListOriginCertificates<'_> {
    fn page(&self, page: u32) -> Self {
        Self { page, ..*self }
    }
}

impl Call for ListOriginCertificates<'_> {
    type Response = Vec<OriginCertificate>;
    fn method(&self) -> &'static str {
        "GET"
    }
    fn path(&self) -> String {
        "/certificates".into()
    }
    fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("zone_id", self.zone_id.to_owned()),
            ("page", self.page.to_string()),
            ("per_page", Self::PER_PAGE.to_string()),
        ]
    }
}

/// Issue an Origin CA certificate for a CSR.
/// <https://developers.cloudflare.com/api/resources/origin_ca_certificates/methods/create/>
#[derive(Debug)]
pub struct CreateOriginCertificate<'a> {
    pub hostnames: &'a [String],
    /// `origin-ecc` or `origin-rsa`.
    pub request_type: &'static str,
    pub requested_validity: u32,
    pub csr: &'a str,
}

impl Call for CreateOriginCertificate<'_> {
    type Response = OriginCertificate;
    fn method(&self) -> &'static str {
        "POST"
    }
    fn path(&self) -> String {
        "/certificates".into()
    }
    fn body(&self) -> Option<Zeroizing<String>> {
        Some(Zeroizing::new(
            serde_json::json!({
                "hostnames": self.hostnames,
                "request_type": self.request_type,
                "requested_validity": self.requested_validity,
                "csr": self.csr,
            })
            .to_string(),
        ))
    }
}

/// Revoke an Origin CA certificate.
/// <https://developers.cloudflare.com/api/resources/origin_ca_certificates/methods/delete/>
#[derive(Debug)]
pub struct RevokeOriginCertificate<'a> {
    pub id: &'a str,
}

impl Call for RevokeOriginCertificate<'_> {
    type Response = serde::de::IgnoredAny;
    fn method(&self) -> &'static str {
        "DELETE"
    }
    fn path(&self) -> String {
        format!("/certificates/{}", segment(self.id))
    }
}

/// A Worker secret's name (its value is never listed).
#[derive(Debug, Clone, Deserialize)]
pub struct WorkerSecret {
    pub name: String,
}

/// List a Worker script's secrets.
/// <https://developers.cloudflare.com/api/resources/workers/subresources/scripts/subresources/secrets/methods/list/>
#[derive(Debug)]
pub struct ListWorkerSecrets<'a> {
    pub account_id: &'a str,
    pub script: &'a str,
}

impl Call for ListWorkerSecrets<'_> {
    type Response = Vec<WorkerSecret>;
    fn method(&self) -> &'static str {
        "GET"
    }
    fn path(&self) -> String {
        format!(
            "/accounts/{}/workers/scripts/{}/secrets",
            segment(self.account_id),
            segment(self.script)
        )
    }
}

/// Add or replace a Worker script's secret (`secret_text`).
/// <https://developers.cloudflare.com/api/resources/workers/subresources/scripts/subresources/secrets/methods/update/>
pub struct PutWorkerSecret<'a> {
    pub account_id: &'a str,
    pub script: &'a str,
    pub name: &'a str,
    pub text: &'a Secret,
}

impl std::fmt::Debug for PutWorkerSecret<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PutWorkerSecret")
            .field("script", &self.script)
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Call for PutWorkerSecret<'_> {
    type Response = serde::de::IgnoredAny;
    fn method(&self) -> &'static str {
        "PUT"
    }
    fn path(&self) -> String {
        ListWorkerSecrets {
            account_id: self.account_id,
            script: self.script,
        }
        .path()
    }
    fn body(&self) -> Option<Zeroizing<String>> {
        Some(Zeroizing::new(
            serde_json::json!({
                "name": self.name,
                "text": self.text.expose(),
                "type": "secret_text",
            })
            .to_string(),
        ))
    }
}

/// Delete a Worker script's secret.
/// <https://developers.cloudflare.com/api/resources/workers/subresources/scripts/subresources/secrets/methods/delete/>
#[derive(Debug)]
pub struct DeleteWorkerSecret<'a> {
    pub account_id: &'a str,
    pub script: &'a str,
    pub name: &'a str,
}

impl Call for DeleteWorkerSecret<'_> {
    type Response = serde::de::IgnoredAny;
    fn method(&self) -> &'static str {
        "DELETE"
    }
    fn path(&self) -> String {
        format!(
            "/accounts/{}/workers/scripts/{}/secrets/{}",
            segment(self.account_id),
            segment(self.script),
            segment(self.name)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_errors_keep_the_providers_words() {
        let e: Envelope<serde::de::IgnoredAny> = serde_json::from_str(
            r#"{"success":false,"errors":[{"code":7003,"message":"Could not route to /zones/x"}],"messages":[],"result":null}"#,
        )
        .unwrap();
        assert_eq!(
            describe(&e.errors),
            "Could not route to /zones/x (code 7003)"
        );
    }

    #[test]
    fn live_shapes_are_read() {
        // An Origin CA certificate as the live API lists it: a decimal id, expires_on in
        // Go's layout, the CSR it was issued for.
        let c: OriginCertificate = serde_json::from_str(
            r#"{"id":"328578533902268680212849205732770752308931942346","certificate":"-----BEGIN CERTIFICATE-----\n","hostnames":["cache.example.com"],"expires_on":"2039-03-24 01:48:00 +0000 UTC","request_type":"origin-ecc","requested_validity":5475,"csr":"-----BEGIN CERTIFICATE REQUEST-----\n"}"#,
        )
        .unwrap();
        assert_eq!(
            crate::certs::parse_origin_ca_time(c.expires_on.as_deref().unwrap()).unwrap(),
            2_184_544_080
        );
        // A DNS record's comment: absent, null or a string.
        for (json, comment) in [
            (
                r#"{"id":"a","type":"CNAME","name":"n","content":"c","proxied":true}"#,
                None,
            ),
            (
                r#"{"id":"a","type":"CNAME","name":"n","content":"c","proxied":true,"comment":null}"#,
                None,
            ),
            (
                r#"{"id":"a","type":"CNAME","name":"n","content":"c","comment":"x"}"#,
                Some("x"),
            ),
        ] {
            let r: DnsRecord = serde_json::from_str(json).unwrap();
            assert_eq!(r.comment.as_deref(), comment, "{json}");
        }
        // Paging facts: total_pages when given; a full page otherwise; none on lists that
        // are not paged (Workers secrets).
        let info: Envelope<Vec<Zone>> = serde_json::from_str(
            r#"{"success":true,"errors":[],"messages":[],"result":[{"id":"z","name":"example.com"}],"result_info":{"page":1,"per_page":1,"count":1,"total_count":2,"total_pages":2}}"#,
        )
        .unwrap();
        assert!(info.result_info.unwrap().more(1, 1));
        let last = ResultInfo {
            page: Some(2),
            total_pages: Some(2),
            ..ResultInfo::default()
        };
        assert!(!last.more(2, 1));
        let no_total = ResultInfo {
            per_page: Some(50),
            ..ResultInfo::default()
        };
        assert!(no_total.more(1, 50) && !no_total.more(1, 49));
        assert!(!ResultInfo::default().more(1, 100));
        // Error codes are integers, kept for decisions (10007: script not found).
        let e: Envelope<serde::de::IgnoredAny> = serde_json::from_str(
            r#"{"success":false,"errors":[{"code":10007,"message":"workers.api.error.script_not_found"}],"messages":[],"result":null}"#,
        )
        .unwrap();
        assert_eq!(e.errors[0].code, Some(10007));
    }

    #[test]
    fn calls_are_data() {
        let c = CreateCname {
            zone_id: "z1",
            name: "cache.example.com",
            target: "nix-store.fra1.cdn.digitaloceanspaces.com",
        };
        let body: serde_json::Value = serde_json::from_str(&c.body().unwrap()).unwrap();
        assert_eq!(body["proxied"], true);
        assert_eq!(body["type"], "CNAME");
        assert_eq!(body["ttl"], 1);
        let secret = Secret::new("s3cr3t-value");
        let put = PutWorkerSecret {
            account_id: "acc",
            script: "nix-cache",
            name: "SPACES_SECRET_ACCESS_KEY",
            text: &secret,
        };
        assert_eq!(
            put.path(),
            "/accounts/acc/workers/scripts/nix-cache/secrets"
        );
        assert!(!format!("{put:?}").contains("s3cr3t"));
        let body: serde_json::Value = serde_json::from_str(&put.body().unwrap()).unwrap();
        assert_eq!(body["type"], "secret_text");
        let hostnames = vec!["cache.example.com".to_owned()];
        let cert = CreateOriginCertificate {
            hostnames: &hostnames,
            request_type: "origin-ecc",
            requested_validity: 365,
            csr: "csr",
        };
        let body: serde_json::Value = serde_json::from_str(&cert.body().unwrap()).unwrap();
        assert_eq!(body["requested_validity"], 365);
    }
}
