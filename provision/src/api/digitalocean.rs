//! DigitalOcean API v2: custom certificates, CDN endpoints and Spaces keys.
//!
//! Reference: <https://docs.digitalocean.com/reference/api/digitalocean/>. Auth is
//! `Authorization: Bearer $DIGITALOCEAN_TOKEN`; errors are `{"id": ..., "message": ...}`.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::send::{Auth, Sender};
use super::{all_pages, json_request, parse_json, segment, ApiError, Call, HttpSettings, Page};
use crate::env::Secret;

const PROVIDER: &str = "DigitalOcean";

/// The DigitalOcean API client: every call goes through [`Client::send`].
#[derive(Debug)]
pub struct Client {
    sender: Sender,
}

impl Client {
    pub fn new(base_url: &str, token: Secret, settings: HttpSettings) -> Result<Self, ApiError> {
        Ok(Self {
            sender: Sender::new(PROVIDER, base_url, Auth::Bearer(token), settings)?,
        })
    }

    /// Sends `call` and decodes its answer.
    pub fn send<C: Call>(&self, call: &C) -> Result<C::Response, ApiError> {
        let request = json_request(call);
        let answer = self.sender.send(&request)?;
        if answer.is_success() {
            return parse_json(PROVIDER, &request, &answer.body);
        }
        let (code, message) = error_body(&answer.text());
        Err(ApiError::Status {
            provider: PROVIDER,
            call: request.call,
            resource: request.resource,
            status: answer.status,
            codes: code.into_iter().collect(),
            message,
        })
    }

    /// Sends a list call page by page, following `links.pages.next` to the last page, within
    /// `PROVISION_MAX_PAGES`.
    pub fn list<C>(&self, call: &C) -> Result<Vec<<C::Response as Listing>::Item>, ApiError>
    where
        C: PagedCall,
        C::Response: Listing,
    {
        all_pages(
            PROVIDER,
            &call.path(),
            self.sender.settings().max_pages,
            |page| Ok(self.send(&call.page(page))?.into_page()),
        )
    }
}

/// A list call that takes a page number.
pub trait PagedCall: Call {
    /// The same call for page `page` (from 1).
    fn page(&self, page: u32) -> Self;
}

/// A list answer: `{<items>: [...], "links": {"pages": {"next": ...}}, "meta": {"total": n}}`.
pub trait Listing {
    type Item;
    fn into_page(self) -> Page<Self::Item>;
}

/// A list answer's `links`: `{}` on the last page, `{"pages": {"next": url, ...}}` before it.
#[derive(Debug, Default, Deserialize)]
pub struct Links {
    #[serde(default)]
    pub pages: Option<PageLinks>,
}

#[derive(Debug, Default, Deserialize)]
pub struct PageLinks {
    #[serde(default)]
    pub next: Option<String>,
}

impl Links {
    fn has_next(&self) -> bool {
        self.pages.as_ref().and_then(|p| p.next.as_ref()).is_some()
    }
}

macro_rules! listing {
    ($list:ty, $field:ident, $item:ty) => {
        impl Listing for $list {
            type Item = $item;
            fn into_page(self) -> Page<$item> {
                Page {
                    more: self.links.has_next(),
                    items: self.$field,
                }
            }
        }
    };
}

/// The provider's own words from an error body `{id, message, request_id}`: the `id` as the
/// code, and the message.
fn error_body(body: &str) -> (Option<String>, String) {
    #[derive(Deserialize)]
    struct ErrorBody {
        id: Option<String>,
        message: Option<String>,
    }
    match serde_json::from_str::<ErrorBody>(body) {
        Ok(ErrorBody {
            id,
            message: Some(message),
        }) => (id, message),
        _ => (None, "(no error message in the answer)".to_owned()),
    }
}

/// A certificate as listed.
#[derive(Debug, Clone, Deserialize)]
pub struct Certificate {
    pub id: String,
    pub name: String,
    #[serde(default)]
    pub not_after: Option<String>,
    #[serde(default)]
    pub sha1_fingerprint: Option<String>,
    #[serde(default)]
    pub state: Option<String>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CertificateList {
    pub certificates: Vec<Certificate>,
    #[serde(default)]
    pub links: Links,
}
listing!(CertificateList, certificates, Certificate);

#[derive(Debug, Deserialize)]
pub struct OneCertificate {
    pub certificate: Certificate,
}

/// List certificates.
/// <https://docs.digitalocean.com/reference/api/digitalocean/#tag/Certificates/operation/certificates_list>
#[derive(Debug)]
pub struct ListCertificates {
    pub page: u32,
}

impl PagedCall for ListCertificates {
    fn page(&self, page: u32) -> Self {
        Self { page }
    }
}

impl Call for ListCertificates {
    type Response = CertificateList;
    fn method(&self) -> &'static str {
        "GET"
    }
    fn path(&self) -> String {
        "/v2/certificates".into()
    }
    fn query(&self) -> Vec<(&'static str, String)> {
        vec![("per_page", "200".into()), ("page", self.page.to_string())]
    }
}

/// Upload a custom certificate (type `custom`: private key and leaf certificate).
/// <https://docs.digitalocean.com/reference/api/digitalocean/#tag/Certificates/operation/certificates_create>
pub struct CreateCustomCertificate<'a> {
    pub name: &'a str,
    pub private_key_pem: &'a str,
    pub leaf_certificate_pem: &'a str,
}

impl std::fmt::Debug for CreateCustomCertificate<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateCustomCertificate")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

impl Call for CreateCustomCertificate<'_> {
    type Response = OneCertificate;
    fn method(&self) -> &'static str {
        "POST"
    }
    fn path(&self) -> String {
        "/v2/certificates".into()
    }
    fn body(&self) -> Option<Zeroizing<String>> {
        #[derive(Serialize)]
        struct Body<'a> {
            name: &'a str,
            #[serde(rename = "type")]
            kind: &'static str,
            private_key: &'a str,
            leaf_certificate: &'a str,
        }
        Some(Zeroizing::new(
            serde_json::to_string(&Body {
                name: self.name,
                kind: "custom",
                private_key: self.private_key_pem,
                leaf_certificate: self.leaf_certificate_pem,
            })
            .expect("a certificate request serializes"),
        ))
    }
}

/// Delete a certificate.
/// <https://docs.digitalocean.com/reference/api/digitalocean/#tag/Certificates/operation/certificates_delete>
#[derive(Debug)]
pub struct DeleteCertificate<'a> {
    pub id: &'a str,
}

impl Call for DeleteCertificate<'_> {
    type Response = serde::de::IgnoredAny;
    fn method(&self) -> &'static str {
        "DELETE"
    }
    fn path(&self) -> String {
        format!("/v2/certificates/{}", segment(self.id))
    }
}

/// A CDN endpoint.
#[derive(Debug, Clone, Deserialize)]
pub struct CdnEndpoint {
    pub id: String,
    pub origin: String,
    pub endpoint: String,
    #[serde(default)]
    pub ttl: Option<u32>,
    #[serde(default)]
    pub custom_domain: Option<String>,
    #[serde(default)]
    pub certificate_id: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct CdnEndpointList {
    pub endpoints: Vec<CdnEndpoint>,
    #[serde(default)]
    pub links: Links,
}
listing!(CdnEndpointList, endpoints, CdnEndpoint);

#[derive(Debug, Deserialize)]
pub struct OneCdnEndpoint {
    pub endpoint: CdnEndpoint,
}

/// List CDN endpoints.
/// <https://docs.digitalocean.com/reference/api/digitalocean/#tag/CDN-Endpoints/operation/cdn_list_endpoints>
#[derive(Debug)]
pub struct ListCdnEndpoints {
    pub page: u32,
}

impl PagedCall for ListCdnEndpoints {
    fn page(&self, page: u32) -> Self {
        Self { page }
    }
}

impl Call for ListCdnEndpoints {
    type Response = CdnEndpointList;
    fn method(&self) -> &'static str {
        "GET"
    }
    fn path(&self) -> String {
        "/v2/cdn/endpoints".into()
    }
    fn query(&self) -> Vec<(&'static str, String)> {
        vec![("per_page", "200".into()), ("page", self.page.to_string())]
    }
}

#[derive(Debug, Serialize)]
struct CdnSettings<'a> {
    ttl: u32,
    custom_domain: &'a str,
    certificate_id: &'a str,
}

/// Create a CDN endpoint for a Space, on a custom domain.
/// <https://docs.digitalocean.com/reference/api/digitalocean/#tag/CDN-Endpoints/operation/cdn_create_endpoint>
#[derive(Debug)]
pub struct CreateCdnEndpoint<'a> {
    pub origin: &'a str,
    pub ttl: u32,
    pub custom_domain: &'a str,
    /// A certificate id, or `needs-cloudflare-cert` for DigitalOcean's managed certificate.
    pub certificate_id: &'a str,
}

impl Call for CreateCdnEndpoint<'_> {
    type Response = OneCdnEndpoint;
    fn method(&self) -> &'static str {
        "POST"
    }
    fn path(&self) -> String {
        "/v2/cdn/endpoints".into()
    }
    fn body(&self) -> Option<Zeroizing<String>> {
        #[derive(Serialize)]
        struct Body<'a> {
            origin: &'a str,
            #[serde(flatten)]
            settings: CdnSettings<'a>,
        }
        Some(Zeroizing::new(
            serde_json::json!(Body {
                origin: self.origin,
                settings: CdnSettings {
                    ttl: self.ttl,
                    custom_domain: self.custom_domain,
                    certificate_id: self.certificate_id,
                },
            })
            .to_string(),
        ))
    }
}

/// Update a CDN endpoint's TTL, custom domain and certificate.
/// <https://docs.digitalocean.com/reference/api/digitalocean/#tag/CDN-Endpoints/operation/cdn_update_endpoints>
#[derive(Debug)]
pub struct UpdateCdnEndpoint<'a> {
    pub id: &'a str,
    pub ttl: u32,
    pub custom_domain: &'a str,
    pub certificate_id: &'a str,
}

impl Call for UpdateCdnEndpoint<'_> {
    type Response = OneCdnEndpoint;
    fn method(&self) -> &'static str {
        "PUT"
    }
    fn path(&self) -> String {
        format!("/v2/cdn/endpoints/{}", segment(self.id))
    }
    fn body(&self) -> Option<Zeroizing<String>> {
        Some(Zeroizing::new(
            serde_json::json!(CdnSettings {
                ttl: self.ttl,
                custom_domain: self.custom_domain,
                certificate_id: self.certificate_id,
            })
            .to_string(),
        ))
    }
}

/// Delete a CDN endpoint.
/// <https://docs.digitalocean.com/reference/api/digitalocean/#tag/CDN-Endpoints/operation/cdn_delete_endpoint>
#[derive(Debug)]
pub struct DeleteCdnEndpoint<'a> {
    pub id: &'a str,
}

impl Call for DeleteCdnEndpoint<'_> {
    type Response = serde::de::IgnoredAny;
    fn method(&self) -> &'static str {
        "DELETE"
    }
    fn path(&self) -> String {
        format!("/v2/cdn/endpoints/{}", segment(self.id))
    }
}

/// A grant on a Spaces key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub bucket: String,
    pub permission: String,
}

/// A Spaces key as listed (never with its secret).
#[derive(Debug, Clone, Deserialize)]
pub struct SpacesKey {
    pub name: String,
    pub access_key: String,
    #[serde(default)]
    pub grants: Vec<Grant>,
}

#[derive(Debug, Deserialize)]
pub struct SpacesKeyList {
    pub keys: Vec<SpacesKey>,
    #[serde(default)]
    pub links: Links,
}
listing!(SpacesKeyList, keys, SpacesKey);

/// List Spaces keys with a name.
/// <https://docs.digitalocean.com/reference/api/digitalocean/#tag/Spaces-Keys/operation/spacesKey_list>
#[derive(Debug)]
pub struct ListSpacesKeys<'a> {
    pub name: &'a str,
    pub page: u32,
}

impl PagedCall for ListSpacesKeys<'_> {
    fn page(&self, page: u32) -> Self {
        Self { page, ..*self }
    }
}

impl Call for ListSpacesKeys<'_> {
    type Response = SpacesKeyList;
    fn method(&self) -> &'static str {
        "GET"
    }
    fn path(&self) -> String {
        "/v2/spaces/keys".into()
    }
    fn query(&self) -> Vec<(&'static str, String)> {
        vec![
            ("name", self.name.to_owned()),
            ("per_page", "200".into()),
            ("page", self.page.to_string()),
        ]
    }
}

/// A new Spaces key: the only answer that carries its secret.
#[derive(Debug, Deserialize)]
pub struct CreatedSpacesKey {
    pub name: String,
    pub access_key: String,
    #[serde(deserialize_with = "secret")]
    pub secret_key: Secret,
    #[serde(default)]
    pub grants: Vec<Grant>,
}

fn secret<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
    let s = Zeroizing::new(String::deserialize(d)?);
    Ok(Secret::new(s.as_str()))
}

#[derive(Debug, Deserialize)]
pub struct OneCreatedSpacesKey {
    pub key: CreatedSpacesKey,
}

/// Create a Spaces key with grants.
/// <https://docs.digitalocean.com/reference/api/digitalocean/#tag/Spaces-Keys/operation/spacesKey_create>
#[derive(Debug)]
pub struct CreateSpacesKey<'a> {
    pub name: &'a str,
    pub grants: Vec<Grant>,
}

impl Call for CreateSpacesKey<'_> {
    type Response = OneCreatedSpacesKey;
    fn method(&self) -> &'static str {
        "POST"
    }
    fn path(&self) -> String {
        "/v2/spaces/keys".into()
    }
    fn body(&self) -> Option<Zeroizing<String>> {
        Some(Zeroizing::new(
            serde_json::json!({ "name": self.name, "grants": self.grants }).to_string(),
        ))
    }
}

/// Rename a Spaces key (its grants stay): how a key's name records its state.
/// <https://docs.digitalocean.com/reference/api/digitalocean/#tag/Spaces-Keys/operation/spacesKey_patch>
#[derive(Debug)]
pub struct RenameSpacesKey<'a> {
    pub access_key: &'a str,
    pub name: &'a str,
}

impl Call for RenameSpacesKey<'_> {
    type Response = OneSpacesKey;
    fn method(&self) -> &'static str {
        "PATCH"
    }
    fn path(&self) -> String {
        format!("/v2/spaces/keys/{}", segment(self.access_key))
    }
    fn body(&self) -> Option<Zeroizing<String>> {
        Some(Zeroizing::new(
            serde_json::json!({ "name": self.name }).to_string(),
        ))
    }
    /// Setting the same name twice is setting it once.
    fn idempotent(&self) -> bool {
        true
    }
}

#[derive(Debug, Deserialize)]
pub struct OneSpacesKey {
    pub key: SpacesKey,
}

/// Delete a Spaces key.
/// <https://docs.digitalocean.com/reference/api/digitalocean/#tag/Spaces-Keys/operation/spacesKey_delete>
#[derive(Debug)]
pub struct DeleteSpacesKey<'a> {
    pub access_key: &'a str,
}

impl Call for DeleteSpacesKey<'_> {
    type Response = serde::de::IgnoredAny;
    fn method(&self) -> &'static str {
        "DELETE"
    }
    fn path(&self) -> String {
        format!("/v2/spaces/keys/{}", segment(self.access_key))
    }
}

/// Whether an error is the CDN refusing a Cloudflare Origin CA certificate on a custom domain.
pub fn is_origin_ca_refusal(e: &ApiError) -> bool {
    match e {
        ApiError::Status {
            status: 422 | 400 | 403,
            message,
            ..
        } => message
            .to_ascii_lowercase()
            .contains("cloudflare origin ca"),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_are_data() {
        let c = CreateCdnEndpoint {
            origin: "nix-store.fra1.digitaloceanspaces.com",
            ttl: 3600,
            custom_domain: "cache.example.com",
            certificate_id: "needs-cloudflare-cert",
        };
        assert_eq!(
            (c.method(), c.path().as_str()),
            ("POST", "/v2/cdn/endpoints")
        );
        let body: serde_json::Value = serde_json::from_str(&c.body().unwrap()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"origin": "nix-store.fra1.digitaloceanspaces.com", "ttl": 3600,
                "custom_domain": "cache.example.com", "certificate_id": "needs-cloudflare-cert"})
        );
        let k = CreateSpacesKey {
            name: "nix-store-worker-read",
            grants: vec![Grant {
                bucket: "nix-store".into(),
                permission: "read".into(),
            }],
        };
        let body: serde_json::Value = serde_json::from_str(&k.body().unwrap()).unwrap();
        assert_eq!(body["grants"][0]["permission"], "read");
        let cert = CreateCustomCertificate {
            name: "n",
            private_key_pem: "-----BEGIN PRIVATE KEY-----x",
            leaf_certificate_pem: "cert",
        };
        assert!(!format!("{cert:?}").contains("PRIVATE"));
        let body: serde_json::Value = serde_json::from_str(&cert.body().unwrap()).unwrap();
        assert_eq!(body["type"], "custom");
    }

    #[test]
    fn errors_carry_the_providers_words() {
        let (code, message) = error_body(
            r#"{"id":"unprocessable_entity","message":"invalid certificate issued by Cloudflare origin CA"}"#,
        );
        let refusal = ApiError::Status {
            provider: PROVIDER,
            call: "POST".into(),
            resource: "/v2/cdn/endpoints".into(),
            status: 422,
            codes: code.into_iter().collect(),
            message,
        };
        assert!(is_origin_ca_refusal(&refusal));
        assert_eq!(
            refusal.to_string(),
            "DigitalOcean answered HTTP 422 unprocessable_entity to POST /v2/cdn/endpoints: \
             invalid certificate issued by Cloudflare origin CA"
        );
    }

    #[test]
    fn live_shapes_are_read() {
        // A CDN endpoint without a custom domain: the fields absent, or empty strings.
        for json in [
            r#"{"id":"e","origin":"o","endpoint":"x","ttl":3600,"created_at":"2018-03-21T16:02:37Z"}"#,
            r#"{"id":"e","origin":"o","endpoint":"x","ttl":3600,"custom_domain":"","certificate_id":""}"#,
        ] {
            let e: CdnEndpoint = serde_json::from_str(json).unwrap();
            assert!(
                e.custom_domain.unwrap_or_default().is_empty()
                    && e.certificate_id.unwrap_or_default().is_empty()
            );
        }
        // Lists: `links` is `{}` on the last page, `links.pages.next` before it.
        let last: CertificateList =
            serde_json::from_str(r#"{"certificates":[],"links":{},"meta":{"total":0}}"#).unwrap();
        assert!(!last.into_page().more);
        let first: SpacesKeyList = serde_json::from_str(
            r#"{"keys":[{"name":"n","access_key":"DO1","grants":[{"bucket":"","permission":"fullaccess"}],"created_at":"2018-07-19T15:04:16Z"}],"links":{"pages":{"next":"https://api.digitalocean.com/v2/spaces/keys?page=2&per_page=1","last":"https://api.digitalocean.com/v2/spaces/keys?page=3&per_page=1"}},"meta":{"total":3}}"#,
        )
        .unwrap();
        let page = first.into_page();
        assert!(page.more);
        assert_eq!(page.items[0].grants[0].permission, "fullaccess");
        // Errors carry a request id beside the message.
        assert_eq!(
            error_body(
                r#"{"id":"not_found","message":"The resource you were accessing could not be found.","request_id":"4d9d8375-3c56-4925-a3e7-eb137fed17e9"}"#
            ),
            (
                Some("not_found".to_owned()),
                "The resource you were accessing could not be found.".to_owned()
            )
        );
        assert_eq!(
            error_body("<html>"),
            (None, "(no error message in the answer)".to_owned())
        );
    }

    #[test]
    fn a_created_key_hides_its_secret() {
        let k: OneCreatedSpacesKey = serde_json::from_str(
            r#"{"key":{"name":"n","access_key":"AK","secret_key":"SK-very-secret","grants":[]}}"#,
        )
        .unwrap();
        assert_eq!(k.key.secret_key.expose(), "SK-very-secret");
        assert!(!format!("{k:?}").contains("SK-very-secret"));
    }
}
