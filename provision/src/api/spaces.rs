//! The S3 calls `provision` makes to a DigitalOcean Spaces bucket (or any S3 server that
//! speaks path-style requests): the bucket, its lifecycle rule, versioning and policy, and
//! single objects such as `nix-cache-info`.
//!
//! Each call is a value first ([`S3Call`]: operation name, method, bucket, key, query,
//! headers, body), built by a pure constructor and tested as data, and turned into a
//! [`send::Request`] that the one [`send::Sender`] signs with the workspace's SigV4 signer
//! ([`nix_spaces_cache::sigv4::sign_s3`]) and sends under the one retry policy. Errors are
//! [`ApiError`]s naming the S3 operation and the resource (`s3://bucket/key`) with the
//! server's own `Code` and `Message`.
//!
//! A Spaces error body looks like this; only `Code` and `Message` are kept (the rest may echo
//! the canonical request, never the secret):
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <Error><Code>NoSuchBucketPolicy</Code><Message>The bucket policy does not exist</Message>
//! <BucketName>nix-store</BucketName><RequestId>tx0000...</RequestId></Error>
//! ```
//!
//! This module never prints: the secret lives in [`Credentials`], whose `Debug` hides it, and
//! [`SpacesClient`]'s `Debug` leaves the credentials out altogether.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use md5::{Digest as _, Md5};
use nix_spaces_cache::sigv4::{self, Credentials};
use serde_json::Value;
use zeroize::Zeroizing;

use super::s3_xml::{self, xml_escape};
pub use super::s3_xml::{lifecycle_xml, parse_lifecycle, Lifecycle, S3_XMLNS};
use super::send::{self, Auth, Response, Sender};
use super::{ApiError, HttpSettings};
pub use crate::bucket_policy::{anonymous_read_policy, policy_equivalent};

const PROVIDER: &str = "Spaces";

/// What `HEAD /bucket` says about a bucket name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BucketStatus {
    /// 404: nobody has it (in this region's namespace): it can be created.
    Missing,
    /// 200: it exists and these credentials may use it.
    Owned,
    /// 403: it exists and belongs to someone else, or these credentials may not see it.
    /// (A HEAD answer has no body, so S3 cannot say which.)
    Forbidden,
}

/// A bucket's versioning state, as `GET /bucket?versioning` reports it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Versioning {
    /// Versioning was never turned on (`<VersioningConfiguration/>` with no `Status`).
    Never,
    Enabled,
    Suspended,
}

/// One entry of a version listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectVersion {
    pub key: String,
    /// `null` for an object written while versioning was off.
    pub version_id: String,
    /// A delete marker rather than a version with content.
    pub delete_marker: bool,
}

/// An object's bytes and its `Content-Type`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Object {
    pub body: Vec<u8>,
    pub content_type: Option<String>,
}

/// One S3 call as data: everything needed to sign and send it, nothing sent yet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct S3Call {
    /// The S3 API operation name, used in errors (`PutBucketLifecycleConfiguration`).
    pub op: &'static str,
    pub method: &'static str,
    pub bucket: String,
    /// `None` for bucket-level calls.
    pub key: Option<String>,
    /// Query parameters, not encoded (encoded and sorted by [`S3Call::query_string`]).
    pub query: Vec<(String, String)>,
    /// Headers to sign and send besides the signer's own (`content-type`, `content-md5`, ...).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl S3Call {
    fn bucket_call(op: &'static str, method: &'static str, bucket: &str) -> Self {
        S3Call {
            op,
            method,
            bucket: bucket.to_owned(),
            key: None,
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    fn object_call(op: &'static str, method: &'static str, bucket: &str, key: &str) -> Self {
        S3Call {
            key: Some(key.to_owned()),
            ..S3Call::bucket_call(op, method, bucket)
        }
    }

    fn with_subresource(mut self, name: &str) -> Self {
        self.query.push((name.to_owned(), String::new()));
        self
    }

    fn with_header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    /// Sets the body, with `Content-MD5` (required by S3 on bucket settings).
    fn with_md5_body(mut self, content_type: &str, body: Vec<u8>) -> Self {
        let md5 = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
        self.body = body;
        self.with_header("content-md5", md5)
            .with_header("content-type", content_type)
    }

    /// The request the sender signs and sends (every S3 call here is idempotent).
    pub fn request(&self) -> send::Request {
        send::Request {
            call: self.op.to_owned(),
            resource: self.resource(),
            method: self.method,
            path: self.path(),
            query: self.query_string(),
            headers: self.headers.clone(),
            body: Zeroizing::new(self.body.clone()),
            idempotent: true,
        }
    }

    /// [HeadBucket](https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html).
    pub fn head_bucket(bucket: &str) -> Self {
        S3Call::bucket_call("HeadBucket", "HEAD", bucket)
    }

    /// [CreateBucket](https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html),
    /// private, with the region as `LocationConstraint` (none for `us-east-1`, as S3 wants).
    pub fn create_bucket(bucket: &str, region: &str) -> Self {
        let call =
            S3Call::bucket_call("CreateBucket", "PUT", bucket).with_header("x-amz-acl", "private");
        if region == "us-east-1" {
            return call;
        }
        let body = format!(
            "<CreateBucketConfiguration xmlns=\"{S3_XMLNS}\"><LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
            xml_escape(region)
        );
        S3Call {
            body: body.into_bytes(),
            ..call
        }
        .with_header("content-type", "application/xml")
    }

    /// [DeleteBucket](https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucket.html).
    pub fn delete_bucket(bucket: &str) -> Self {
        S3Call::bucket_call("DeleteBucket", "DELETE", bucket)
    }

    /// [GetBucketVersioning](https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketVersioning.html).
    pub fn get_versioning(bucket: &str) -> Self {
        S3Call::bucket_call("GetBucketVersioning", "GET", bucket).with_subresource("versioning")
    }

    /// [PutBucketVersioning](https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketVersioning.html):
    /// `Enabled`, or `Suspended` (S3 cannot go back to never-versioned).
    pub fn put_versioning(bucket: &str, enabled: bool) -> Self {
        let body = s3_xml::versioning_xml(enabled);
        S3Call::bucket_call("PutBucketVersioning", "PUT", bucket)
            .with_subresource("versioning")
            .with_md5_body("application/xml", body.into_bytes())
    }

    /// [GetBucketLifecycleConfiguration](https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLifecycleConfiguration.html).
    pub fn get_lifecycle(bucket: &str) -> Self {
        S3Call::bucket_call("GetBucketLifecycleConfiguration", "GET", bucket)
            .with_subresource("lifecycle")
    }

    /// [PutBucketLifecycleConfiguration](https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketLifecycleConfiguration.html),
    /// one rule for the whole bucket, with `Content-MD5`.
    pub fn put_lifecycle(bucket: &str, rule: &Lifecycle) -> Self {
        S3Call::bucket_call("PutBucketLifecycleConfiguration", "PUT", bucket)
            .with_subresource("lifecycle")
            .with_md5_body("application/xml", lifecycle_xml(rule).into_bytes())
    }

    /// [DeleteBucketLifecycle](https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucketLifecycle.html).
    pub fn delete_lifecycle(bucket: &str) -> Self {
        S3Call::bucket_call("DeleteBucketLifecycle", "DELETE", bucket).with_subresource("lifecycle")
    }

    /// [GetBucketPolicy](https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketPolicy.html).
    pub fn get_policy(bucket: &str) -> Self {
        S3Call::bucket_call("GetBucketPolicy", "GET", bucket).with_subresource("policy")
    }

    /// [PutBucketPolicy](https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketPolicy.html).
    pub fn put_policy(bucket: &str, policy: &Value) -> Self {
        S3Call::bucket_call("PutBucketPolicy", "PUT", bucket)
            .with_subresource("policy")
            .with_md5_body("application/json", policy.to_string().into_bytes())
    }

    /// [DeleteBucketPolicy](https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteBucketPolicy.html).
    pub fn delete_policy(bucket: &str) -> Self {
        S3Call::bucket_call("DeleteBucketPolicy", "DELETE", bucket).with_subresource("policy")
    }

    /// [GetObject](https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
    pub fn get_object(bucket: &str, key: &str) -> Self {
        S3Call::object_call("GetObject", "GET", bucket, key)
    }

    /// [PutObject](https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutObject.html).
    pub fn put_object(bucket: &str, key: &str, body: &[u8], content_type: &str) -> Self {
        S3Call {
            body: body.to_vec(),
            ..S3Call::object_call("PutObject", "PUT", bucket, key)
        }
        .with_header("content-type", content_type)
    }

    /// [DeleteObject](https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html).
    pub fn delete_object(bucket: &str, key: &str) -> Self {
        S3Call::object_call("DeleteObject", "DELETE", bucket, key)
    }

    /// [DeleteObject](https://docs.aws.amazon.com/AmazonS3/latest/API/API_DeleteObject.html)
    /// of one version (`versionId`), which removes it for good.
    pub fn delete_object_version(bucket: &str, key: &str, version_id: &str) -> Self {
        let mut call = S3Call::delete_object(bucket, key);
        call.query.push(("versionId".into(), version_id.into()));
        call
    }

    /// [GetBucketLocation](https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetBucketLocation.html).
    pub fn get_bucket_location(bucket: &str) -> Self {
        S3Call::bucket_call("GetBucketLocation", "GET", bucket).with_subresource("location")
    }

    /// [ListObjectsV2](https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html),
    /// one page of up to `max_keys` keys (S3 caps it at 1000).
    pub fn list_objects(bucket: &str, continuation_token: Option<&str>, max_keys: u32) -> Self {
        let mut call = S3Call::bucket_call("ListObjectsV2", "GET", bucket);
        call.query.push(("list-type".into(), "2".into()));
        call.query.push(("max-keys".into(), max_keys.to_string()));
        if let Some(token) = continuation_token {
            call.query.push(("continuation-token".into(), token.into()));
        }
        call
    }

    /// [ListObjectVersions](https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectVersions.html),
    /// one page; `marker` is the previous page's `(NextKeyMarker, NextVersionIdMarker)`.
    pub fn list_object_versions(bucket: &str, marker: Option<(&str, &str)>, max_keys: u32) -> Self {
        let mut call =
            S3Call::bucket_call("ListObjectVersions", "GET", bucket).with_subresource("versions");
        call.query.push(("max-keys".into(), max_keys.to_string()));
        if let Some((key, version)) = marker {
            call.query.push(("key-marker".into(), key.into()));
            if !version.is_empty() {
                call.query
                    .push(("version-id-marker".into(), version.into()));
            }
        }
        call
    }

    /// The resource the call acts on, as people write it: `s3://bucket` or `s3://bucket/key`.
    pub fn resource(&self) -> String {
        match &self.key {
            Some(key) => format!("s3://{}/{}", self.bucket, key),
            None => format!("s3://{}", self.bucket),
        }
    }

    /// The encoded path-style path: `/bucket` or `/bucket/key`.
    pub fn path(&self) -> String {
        match &self.key {
            Some(key) => sigv4::s3_object_path(&self.bucket, key),
            None => format!("/{}", sigv4::uri_encode(&self.bucket, false)),
        }
    }

    /// The encoded query, sorted as SigV4 wants it; a parameter with no value is sent bare
    /// (`versioning`).
    pub fn query_string(&self) -> String {
        let mut pairs: Vec<(String, String)> = self
            .query
            .iter()
            .map(|(k, v)| (sigv4::uri_encode(k, false), sigv4::uri_encode(v, false)))
            .collect();
        pairs.sort();
        pairs
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    k.clone()
                } else {
                    format!("{k}={v}")
                }
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The S3 error code in an answer's body, if any.
pub fn error_code(answer: &Response) -> Option<String> {
    s3_xml::error_body(&answer.text()).and_then(|e| e.code)
}

/// Turns an error answer into an [`ApiError::Status`] naming the call.
pub fn http_error(call: &S3Call, answer: &Response) -> ApiError {
    let text = answer.text();
    let body = s3_xml::error_body(&text).unwrap_or_default();
    let code = body.code;
    let message = match body.message {
        Some(m) => m,
        None if code.is_none()
            && !text.trim().is_empty()
            && !text.trim_start().starts_with('<') =>
        {
            text.trim().chars().take(200).collect()
        }
        None => status_reason(answer.status).to_owned(),
    };
    ApiError::Status {
        provider: PROVIDER,
        call: call.op.to_owned(),
        resource: call.resource(),
        status: answer.status,
        codes: code.into_iter().collect(),
        message,
    }
}

fn status_reason(status: u16) -> &'static str {
    match status {
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "",
    }
}

/// A signed-request client for one S3 endpoint and region.
pub struct SpacesClient {
    sender: Sender,
    region: String,
    /// Keys asked per listing page.
    page_size: u32,
}

impl fmt::Debug for SpacesClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpacesClient")
            .field("sender", &self.sender)
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl SpacesClient {
    /// A client for `endpoint` (`https://fra1.digitaloceanspaces.com`, or `http://127.0.0.1:P`
    /// in tests) signing for `region` (`fra1`), timed and retried by
    /// [`HttpSettings::from_env`].
    pub fn new(endpoint: &str, region: &str, creds: Credentials) -> Result<Self, ApiError> {
        Self::with_settings(endpoint, region, creds, HttpSettings::from_env())
    }

    /// [`SpacesClient::new`] with this retry policy.
    pub fn with_settings(
        endpoint: &str,
        region: &str,
        creds: Credentials,
        settings: HttpSettings,
    ) -> Result<Self, ApiError> {
        if region.is_empty() {
            return Err(ApiError::Endpoint {
                provider: PROVIDER,
                url: endpoint.to_owned(),
                reason: "the region is empty".to_owned(),
            });
        }
        let auth = Auth::SigV4 {
            credentials: creds,
            region: region.to_owned(),
        };
        Ok(SpacesClient {
            sender: Sender::new(PROVIDER, endpoint, auth, settings)?,
            region: region.to_owned(),
            page_size: 1000,
        })
    }

    /// The same client with `attempts` tries in all, waiting `base`, then doubling.
    pub fn with_retry(mut self, base: Duration, attempts: u32) -> Self {
        let settings = HttpSettings {
            attempts: attempts.max(1),
            base_delay: base,
            ..self.sender.settings().clone()
        };
        self.sender = self.sender.with_settings(settings);
        self
    }

    /// Changes how many keys a listing page asks for (1 to 1000; default 1000).
    pub fn with_page_size(mut self, page_size: u32) -> Self {
        self.page_size = page_size.clamp(1, 1000);
        self
    }

    /// `scheme://host[:port]`.
    pub fn endpoint(&self) -> String {
        self.sender.base_url().to_owned()
    }

    /// The region in the credential scope.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// Signs and sends one call (the sender retries what is worth retrying). Any answer that
    /// is not retried is returned, error statuses included: the caller decides what a 404
    /// means.
    pub fn send(&self, call: &S3Call) -> Result<Response, ApiError> {
        self.sender.send(&call.request())
    }

    /// Sends the call and treats any status outside 2xx as an error.
    fn expect_success(&self, call: &S3Call) -> Result<Response, ApiError> {
        let answer = self.send(call)?;
        if (200..300).contains(&answer.status) {
            Ok(answer)
        } else {
            Err(http_error(call, &answer))
        }
    }

    /// Sends the call; a 404 whose S3 code is `missing_code` (or any 404 without a body, for
    /// HEAD) is `None`.
    fn expect_optional(
        &self,
        call: &S3Call,
        missing_code: &str,
    ) -> Result<Option<Response>, ApiError> {
        let answer = self.send(call)?;
        if (200..300).contains(&answer.status) {
            return Ok(Some(answer));
        }
        if answer.status == 404 && error_code(&answer).as_deref() == Some(missing_code) {
            return Ok(None);
        }
        Err(http_error(call, &answer))
    }

    fn malformed(call: &S3Call, reason: impl Into<String>) -> ApiError {
        ApiError::Malformed {
            provider: PROVIDER,
            call: call.op.to_owned(),
            resource: call.resource(),
            reason: reason.into(),
        }
    }

    /// Whether the bucket exists and is ours (see [`BucketStatus`]).
    ///
    /// A HEAD answer has no body, so a 403 is asked again as GetBucketLocation, whose error
    /// code tells refused credentials (an error here, e.g. `SignatureDoesNotMatch`) from a
    /// bucket that is not ours ([`BucketStatus::Forbidden`]).
    pub fn head_bucket(&self, bucket: &str) -> Result<BucketStatus, ApiError> {
        let call = S3Call::head_bucket(bucket);
        let answer = self.send(&call)?;
        match answer.status {
            200..=299 => Ok(BucketStatus::Owned),
            404 => Ok(BucketStatus::Missing),
            403 => {
                let location = self.send(&S3Call::get_bucket_location(bucket))?;
                let refused = http_error(&call, &location);
                if refused.is_credentials() {
                    Err(refused)
                } else {
                    Ok(BucketStatus::Forbidden)
                }
            }
            _ => Err(http_error(&call, &answer)),
        }
    }

    /// Creates the bucket, private, in the client's region. A bucket we already own is fine
    /// (`BucketAlreadyOwnedByYou`); one owned by someone else (`BucketAlreadyExists`) is not.
    pub fn create_bucket(&self, bucket: &str) -> Result<(), ApiError> {
        let call = S3Call::create_bucket(bucket, &self.region);
        let answer = self.send(&call)?;
        if (200..300).contains(&answer.status)
            || (answer.status == 409
                && error_code(&answer).as_deref() == Some("BucketAlreadyOwnedByYou"))
        {
            return Ok(());
        }
        Err(http_error(&call, &answer))
    }

    /// The bucket's versioning state.
    pub fn get_versioning(&self, bucket: &str) -> Result<Versioning, ApiError> {
        let call = S3Call::get_versioning(bucket);
        let answer = self.expect_success(&call)?;
        let status = s3_xml::versioning_status(&answer.text())
            .map_err(|reason| Self::malformed(&call, reason))?;
        match status.as_deref() {
            None => Ok(Versioning::Never),
            Some("Enabled") => Ok(Versioning::Enabled),
            Some("Suspended") => Ok(Versioning::Suspended),
            Some(other) => Err(Self::malformed(
                &call,
                format!("unknown versioning status {other:?}"),
            )),
        }
    }

    /// Turns versioning on, or suspends it.
    pub fn put_versioning(&self, bucket: &str, enabled: bool) -> Result<(), ApiError> {
        self.expect_success(&S3Call::put_versioning(bucket, enabled))
            .map(drop)
    }

    /// The bucket's lifecycle rule: the first rule when there are several (see
    /// [`SpacesClient::get_lifecycle_rules`]), `None` when there is no configuration.
    pub fn get_lifecycle(&self, bucket: &str) -> Result<Option<Lifecycle>, ApiError> {
        Ok(self
            .get_lifecycle_rules(bucket)?
            .and_then(|rules| rules.into_iter().next()))
    }

    /// Every lifecycle rule of the bucket, `None` when there is no configuration.
    pub fn get_lifecycle_rules(&self, bucket: &str) -> Result<Option<Vec<Lifecycle>>, ApiError> {
        let call = S3Call::get_lifecycle(bucket);
        let Some(answer) = self.expect_optional(&call, "NoSuchLifecycleConfiguration")? else {
            return Ok(None);
        };
        parse_lifecycle(&answer.text())
            .map(Some)
            .map_err(|reason| Self::malformed(&call, reason))
    }

    /// Replaces the lifecycle configuration with this one rule.
    pub fn put_lifecycle(&self, bucket: &str, rule: &Lifecycle) -> Result<(), ApiError> {
        self.expect_success(&S3Call::put_lifecycle(bucket, rule))
            .map(drop)
    }

    /// Removes the lifecycle configuration (none is fine).
    pub fn delete_lifecycle(&self, bucket: &str) -> Result<(), ApiError> {
        self.expect_optional(
            &S3Call::delete_lifecycle(bucket),
            "NoSuchLifecycleConfiguration",
        )
        .map(drop)
    }

    /// The bucket policy as JSON, `None` when there is none.
    pub fn get_policy(&self, bucket: &str) -> Result<Option<Value>, ApiError> {
        let call = S3Call::get_policy(bucket);
        let Some(answer) = self.expect_optional(&call, "NoSuchBucketPolicy")? else {
            return Ok(None);
        };
        serde_json::from_slice(&answer.body)
            .map(Some)
            .map_err(|e| Self::malformed(&call, format!("the policy is not JSON: {e}")))
    }

    /// Replaces the bucket policy.
    pub fn put_policy(&self, bucket: &str, policy: &Value) -> Result<(), ApiError> {
        self.expect_success(&S3Call::put_policy(bucket, policy))
            .map(drop)
    }

    /// Removes the bucket policy (none is fine).
    pub fn delete_policy(&self, bucket: &str) -> Result<(), ApiError> {
        self.expect_optional(&S3Call::delete_policy(bucket), "NoSuchBucketPolicy")
            .map(drop)
    }

    /// The object, `None` when there is no such key.
    pub fn get_object(&self, bucket: &str, key: &str) -> Result<Option<Object>, ApiError> {
        let call = S3Call::get_object(bucket, key);
        let Some(answer) = self.expect_optional(&call, "NoSuchKey")? else {
            return Ok(None);
        };
        let content_type = answer.header("content-type").map(str::to_owned);
        Ok(Some(Object {
            body: answer.body,
            content_type,
        }))
    }

    /// Writes the object with its `Content-Type`.
    pub fn put_object(
        &self,
        bucket: &str,
        key: &str,
        body: &[u8],
        content_type: &str,
    ) -> Result<(), ApiError> {
        self.expect_success(&S3Call::put_object(bucket, key, body, content_type))
            .map(drop)
    }

    /// Deletes the object (S3 answers 204 whether or not it existed).
    pub fn delete_object(&self, bucket: &str, key: &str) -> Result<(), ApiError> {
        self.expect_optional(&S3Call::delete_object(bucket, key), "NoSuchKey")
            .map(drop)
    }

    /// How many objects the bucket holds, by ListObjectsV2, every page. This counts current
    /// objects only: in a versioned bucket, noncurrent versions and delete markers also keep
    /// the bucket from being deleted; [`SpacesClient::count_object_versions`] counts those.
    pub fn count_objects(&self, bucket: &str) -> Result<u64, ApiError> {
        let mut total = 0u64;
        let mut token: Option<String> = None;
        loop {
            let (objects, next) = self.list_objects_page(bucket, token.as_deref())?;
            total += objects.len() as u64;
            match next {
                None => return Ok(total),
                Some(next) => token = Some(next),
            }
        }
    }

    /// One page of ListObjectsV2 after the continuation token of the page before: its
    /// objects, and the token of the next page (`None` on the last page). A truncated page
    /// without a new token is an error, never an endless listing.
    pub fn list_objects_page(
        &self,
        bucket: &str,
        token: Option<&str>,
    ) -> Result<(Vec<s3_xml::ListedObject>, Option<String>), ApiError> {
        let call = S3Call::list_objects(bucket, token, self.page_size);
        let answer = self.expect_success(&call)?;
        let page = s3_xml::list_objects(&answer.text())
            .map_err(|reason| Self::malformed(&call, reason))?;
        if !page.is_truncated {
            return Ok((page.objects, None));
        }
        match page.next_continuation_token {
            Some(next) if token != Some(next.as_str()) => Ok((page.objects, Some(next))),
            _ => Err(Self::malformed(
                &call,
                "a truncated listing without a new NextContinuationToken",
            )),
        }
    }

    /// How many object versions and delete markers the bucket holds (ListObjectVersions,
    /// every page): zero means the bucket can be deleted.
    pub fn count_object_versions(&self, bucket: &str) -> Result<u64, ApiError> {
        Ok(self.list_object_versions(bucket, None)?.len() as u64)
    }

    /// Every version and delete marker in the bucket (of keys starting with `prefix`, when
    /// given), by ListObjectVersions, every page. A bucket that was never versioned lists
    /// each object once, with version id `null`.
    pub fn list_object_versions(
        &self,
        bucket: &str,
        prefix: Option<&str>,
    ) -> Result<Vec<ObjectVersion>, ApiError> {
        let mut all = Vec::new();
        let mut marker: Option<(String, String)> = None;
        loop {
            let mut call = S3Call::list_object_versions(
                bucket,
                marker.as_ref().map(|(k, v)| (k.as_str(), v.as_str())),
                self.page_size,
            );
            if let Some(prefix) = prefix {
                call.query.push(("prefix".into(), prefix.into()));
            }
            let answer = self.expect_success(&call)?;
            let page = s3_xml::list_versions(&answer.text())
                .map_err(|reason| Self::malformed(&call, reason))?;
            all.extend(
                page.entries
                    .into_iter()
                    .map(|(key, version_id, delete_marker)| ObjectVersion {
                        key,
                        version_id,
                        delete_marker,
                    }),
            );
            if !page.is_truncated {
                return Ok(all);
            }
            let next = (
                page.next_key_marker.unwrap_or_default(),
                page.next_version_id_marker.unwrap_or_default(),
            );
            if next.0.is_empty() || marker.as_ref() == Some(&next) {
                return Err(Self::malformed(
                    &call,
                    "a truncated listing without a new NextKeyMarker",
                ));
            }
            marker = Some(next);
        }
    }

    /// Deletes one version (or delete marker) of an object for good.
    pub fn delete_object_version(
        &self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<(), ApiError> {
        self.expect_optional(
            &S3Call::delete_object_version(bucket, key, version_id),
            "NoSuchVersion",
        )
        .map(drop)
    }

    /// Deletes the bucket. A bucket that still holds objects is refused by S3 with
    /// `BucketNotEmpty` ([`ApiError::is_bucket_not_empty`]).
    pub fn delete_bucket(&self, bucket: &str) -> Result<(), ApiError> {
        self.expect_success(&S3Call::delete_bucket(bucket))
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule() -> Lifecycle {
        Lifecycle {
            id: "nix-cache-expiry".into(),
            enabled: true,
            expiration_days: Some(30),
            expired_object_delete_marker: false,
            noncurrent_days: None,
            abort_incomplete_multipart_days: Some(1),
        }
    }

    #[test]
    fn errors_keep_code_and_message_and_name_the_call() {
        let call = S3Call::put_lifecycle("nix-store", &rule());
        let answer = Response {
            status: 403,
            headers: vec![],
            body: b"<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><StringToSign>AWS4</StringToSign></Error>".to_vec(),
        };
        let err = http_error(&call, &answer);
        assert!(err.is_credentials());
        let text = err.to_string();
        assert!(text.starts_with("Spaces answered HTTP 403 SignatureDoesNotMatch to PutBucketLifecycleConfiguration s3://nix-store: The request signature"), "{text}");
        assert!(text.contains("SPACES_SECRET_ACCESS_KEY"));
        assert!(!text.contains("StringToSign"));

        let head = Response {
            status: 501,
            headers: vec![],
            body: Vec::new(),
        };
        let err = http_error(&S3Call::get_versioning("b"), &head);
        assert!(err.is_not_implemented());
        assert_eq!(
            err.to_string(),
            "Spaces answered HTTP 501 to GetBucketVersioning s3://b: Not Implemented (this server does not implement this call)"
        );
    }

    #[test]
    fn calls_as_data() {
        let call = S3Call::create_bucket("nix-store", "fra1");
        assert_eq!((call.method, call.path().as_str()), ("PUT", "/nix-store"));
        assert!(call
            .headers
            .contains(&("x-amz-acl".to_owned(), "private".to_owned())));
        assert!(String::from_utf8(call.body.clone())
            .unwrap()
            .contains("<LocationConstraint>fra1</LocationConstraint>"));
        assert!(S3Call::create_bucket("b", "us-east-1").body.is_empty());

        let put = S3Call::put_lifecycle("b", &rule());
        assert_eq!(put.query_string(), "lifecycle");
        let md5 = put
            .headers
            .iter()
            .find(|(n, _)| n == "content-md5")
            .unwrap();
        let expected = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&put.body));
        assert_eq!(md5.1, expected);
        assert_eq!(md5.1.len(), 24);

        let list = S3Call::list_objects("b", Some("1/a+b=="), 1000);
        assert_eq!(
            list.query_string(),
            "continuation-token=1%2Fa%2Bb%3D%3D&list-type=2&max-keys=1000"
        );
        let obj = S3Call::get_object("b", "nar/a b.nar");
        assert_eq!(obj.path(), "/b/nar/a%20b.nar");
        assert_eq!(obj.resource(), "s3://b/nar/a b.nar");
    }

    #[test]
    fn debug_hides_the_secret() {
        let creds = Credentials::new("AKIDEXAMPLE", "wJalrXUtnFEMI-very-secret");
        let client = SpacesClient::new("http://127.0.0.1:9", "fra1", creds).unwrap();
        let debug = format!("{client:?}");
        assert!(!debug.contains("very-secret"), "{debug}");
        assert!(debug.contains("127.0.0.1:9"));
    }
}
