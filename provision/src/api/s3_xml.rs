//! The S3 XML documents provision reads and writes, as serde types parsed and written by
//! `quick-xml` (no hand-written scanning): error bodies, versioning, lifecycle rules, and the
//! two listings. Pure: text in, values out.
//!
//! An error body, as Spaces (and AWS) send it; only `Code` and `Message` are kept (the rest
//! may echo the canonical request):
//!
//! ```xml
//! <?xml version="1.0" encoding="UTF-8"?>
//! <Error><Code>NoSuchBucketPolicy</Code><Message>The bucket policy does not exist</Message>
//! <BucketName>nix-store</BucketName><RequestId>tx0000...</RequestId></Error>
//! ```

use serde::{Deserialize, Serialize};

/// The namespace S3 puts on its XML documents.
pub const S3_XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// An S3 error body's code and message (either may be missing or empty).
#[derive(Debug, Default, Deserialize, PartialEq, Eq)]
pub struct ErrorBody {
    #[serde(rename = "Code", default)]
    pub code: Option<String>,
    #[serde(rename = "Message", default)]
    pub message: Option<String>,
}

/// `<Error>…</Error>`, or `None` when the text is not such a document.
pub fn error_body(text: &str) -> Option<ErrorBody> {
    // Only a document whose root is <Error> is an error body.
    let root = root_name(text)?;
    if root != "Error" {
        return None;
    }
    let body: ErrorBody = quick_xml::de::from_str(text).ok()?;
    Some(ErrorBody {
        code: body
            .code
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty()),
        message: body
            .message
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty()),
    })
}

/// The name of the document's root element, if the text is XML.
fn root_name(text: &str) -> Option<String> {
    let mut reader = quick_xml::Reader::from_str(text);
    loop {
        match reader.read_event().ok()? {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e) => {
                let name = e.local_name();
                return Some(name.into_inner().to_owned());
            }
            quick_xml::events::Event::Eof => return None,
            _ => {}
        }
    }
}

/// Whether the text is an XML document with this root element.
pub fn has_root(text: &str, name: &str) -> bool {
    root_name(text).as_deref() == Some(name)
}

/// `<VersioningConfiguration>`: its `Status`, absent for a bucket never versioned.
pub fn versioning_status(text: &str) -> Result<Option<String>, String> {
    #[derive(Deserialize)]
    struct VersioningConfiguration {
        #[serde(rename = "Status", default)]
        status: Option<String>,
    }
    // S3 answers `<VersioningConfiguration/>` for a never-versioned bucket; some servers
    // answer an empty body.
    if text.trim().is_empty() {
        return Ok(None);
    }
    // Any root: S3 writes VersioningConfiguration, moto GetBucketVersioningResponse for a
    // bucket never versioned.
    if root_name(text).is_none() {
        return Err("not an XML document".to_owned());
    }
    let doc: VersioningConfiguration =
        quick_xml::de::from_str(text).map_err(|e| format!("VersioningConfiguration: {e}"))?;
    Ok(doc
        .status
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty()))
}

/// `<VersioningConfiguration><Status>Enabled|Suspended</Status></VersioningConfiguration>`.
pub fn versioning_xml(enabled: bool) -> String {
    format!(
        "<VersioningConfiguration xmlns=\"{S3_XMLNS}\"><Status>{}</Status></VersioningConfiguration>",
        if enabled { "Enabled" } else { "Suspended" }
    )
}

/// One lifecycle rule, as provision writes it and reads it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lifecycle {
    pub id: String,
    pub enabled: bool,
    /// Current objects expire this many days after they were written.
    pub expiration_days: Option<u32>,
    /// Delete markers whose every older version is gone are removed.
    pub expired_object_delete_marker: bool,
    /// Versions that are no longer current are deleted this many days after they became so.
    pub noncurrent_days: Option<u32>,
    /// Unfinished multipart uploads are aborted after this many days.
    pub abort_incomplete_multipart_days: Option<u32>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename = "LifecycleConfiguration")]
struct LifecycleConfiguration {
    #[serde(rename = "@xmlns", default, skip_serializing_if = "Option::is_none")]
    xmlns: Option<String>,
    #[serde(rename = "Rule", default)]
    rules: Vec<Rule>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Rule {
    #[serde(rename = "ID", default)]
    id: Option<String>,
    #[serde(rename = "Prefix", default)]
    prefix: Option<String>,
    #[serde(rename = "Status", default)]
    status: String,
    #[serde(
        rename = "Expiration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    expiration: Option<Expiration>,
    #[serde(
        rename = "NoncurrentVersionExpiration",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    noncurrent: Option<NoncurrentVersionExpiration>,
    #[serde(
        rename = "AbortIncompleteMultipartUpload",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    abort: Option<AbortIncompleteMultipartUpload>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Expiration {
    #[serde(rename = "Days", default, skip_serializing_if = "Option::is_none")]
    days: Option<String>,
    #[serde(
        rename = "ExpiredObjectDeleteMarker",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    expired_object_delete_marker: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct NoncurrentVersionExpiration {
    #[serde(rename = "NoncurrentDays", default)]
    days: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct AbortIncompleteMultipartUpload {
    #[serde(rename = "DaysAfterInitiation", default)]
    days: Option<String>,
}

/// The `LifecycleConfiguration` document with this one rule (prefix empty: every object).
pub fn lifecycle_xml(rule: &Lifecycle) -> String {
    let doc = LifecycleConfiguration {
        xmlns: Some(S3_XMLNS.to_owned()),
        rules: vec![Rule {
            id: Some(rule.id.clone()),
            prefix: Some(String::new()),
            status: if rule.enabled { "Enabled" } else { "Disabled" }.to_owned(),
            // S3 takes Days or ExpiredObjectDeleteMarker in one Expiration, not both.
            expiration: match (rule.expiration_days, rule.expired_object_delete_marker) {
                (Some(d), _) => Some(Expiration {
                    days: Some(d.to_string()),
                    expired_object_delete_marker: None,
                }),
                (None, true) => Some(Expiration {
                    days: None,
                    expired_object_delete_marker: Some("true".to_owned()),
                }),
                (None, false) => None,
            },
            noncurrent: rule.noncurrent_days.map(|d| NoncurrentVersionExpiration {
                days: Some(d.to_string()),
            }),
            abort: rule
                .abort_incomplete_multipart_days
                .map(|d| AbortIncompleteMultipartUpload {
                    days: Some(d.to_string()),
                }),
        }],
    };
    quick_xml::se::to_string(&doc).expect("a lifecycle document serializes")
}

/// The rules of a `LifecycleConfiguration` document.
pub fn parse_lifecycle(text: &str) -> Result<Vec<Lifecycle>, String> {
    if !has_root(text, "LifecycleConfiguration") {
        return Err("no LifecycleConfiguration element".to_owned());
    }
    let doc: LifecycleConfiguration =
        quick_xml::de::from_str(text).map_err(|e| format!("LifecycleConfiguration: {e}"))?;
    let days = |text: Option<String>, what: &str| -> Result<Option<u32>, String> {
        match text.map(|t| t.trim().to_owned()) {
            None => Ok(None),
            Some(t) => t
                .parse::<u32>()
                .map(Some)
                .map_err(|_| format!("{what} is not a number of days: {t:?}")),
        }
    };
    doc.rules
        .into_iter()
        .map(|rule| {
            let (expiration_days, marker) = match rule.expiration {
                Some(e) => (e.days, e.expired_object_delete_marker),
                None => (None, None),
            };
            Ok(Lifecycle {
                id: rule.id.unwrap_or_default().trim().to_owned(),
                enabled: rule.status.trim() == "Enabled",
                expiration_days: days(expiration_days, "Expiration/Days")?,
                expired_object_delete_marker: marker.is_some_and(|m| m.trim() == "true"),
                noncurrent_days: days(
                    rule.noncurrent.and_then(|n| n.days),
                    "NoncurrentVersionExpiration/NoncurrentDays",
                )?,
                abort_incomplete_multipart_days: days(
                    rule.abort.and_then(|a| a.days),
                    "AbortIncompleteMultipartUpload/DaysAfterInitiation",
                )?,
            })
        })
        .collect()
}

/// A page of ListObjectsV2: the objects, and where the next page starts.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ObjectsPage {
    pub objects: Vec<ListedObject>,
    pub is_truncated: bool,
    pub next_continuation_token: Option<String>,
}

/// One `Contents` entry of a listing.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ListedObject {
    pub key: String,
    /// `Size`, in bytes.
    pub size: Option<u64>,
    /// `LastModified`, as S3 writes it (ISO 8601, `2026-11-02T10:00:00.000Z`).
    pub last_modified: Option<String>,
}

/// A page of ListObjectVersions: versions and delete markers, in document order.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct VersionsPage {
    /// (key, version id — `null` when absent, delete marker)
    pub entries: Vec<(String, String, bool)>,
    pub is_truncated: bool,
    pub next_key_marker: Option<String>,
    pub next_version_id_marker: Option<String>,
}

/// A listing's children in document order (S3 may interleave them); the rest is skipped.
#[derive(Debug, Deserialize)]
struct Listing {
    #[serde(rename = "$value", default)]
    children: Vec<Child>,
}

#[derive(Debug, Deserialize)]
enum Child {
    IsTruncated(String),
    NextContinuationToken(String),
    NextKeyMarker(String),
    NextVersionIdMarker(String),
    Contents(Entry),
    Version(Entry),
    DeleteMarker(Entry),
    #[serde(other)]
    Other,
}

#[derive(Debug, Deserialize)]
struct Entry {
    #[serde(rename = "Key")]
    key: String,
    #[serde(rename = "VersionId", default)]
    version_id: Option<String>,
    #[serde(rename = "Size", default)]
    size: Option<u64>,
    #[serde(rename = "LastModified", default)]
    last_modified: Option<String>,
}

impl Entry {
    fn into_version(self, delete_marker: bool) -> (String, String, bool) {
        let version_id = self
            .version_id
            .and_then(non_empty)
            .unwrap_or_else(|| "null".to_owned());
        (self.key, version_id, delete_marker)
    }
}

fn listing(text: &str, root: &str) -> Result<Listing, String> {
    if !has_root(text, root) {
        return Err(format!("no {root} element"));
    }
    quick_xml::de::from_str(text).map_err(|e| format!("{root}: {e}"))
}

fn truthy(text: &str) -> bool {
    text.trim() == "true"
}

fn non_empty(text: String) -> Option<String> {
    let text = text.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Parses a ListObjectsV2 page.
pub fn list_objects(text: &str) -> Result<ObjectsPage, String> {
    let mut page = ObjectsPage::default();
    for child in listing(text, "ListBucketResult")?.children {
        match child {
            Child::IsTruncated(t) => page.is_truncated = truthy(&t),
            Child::NextContinuationToken(t) => page.next_continuation_token = non_empty(t),
            Child::Contents(e) => page.objects.push(ListedObject {
                key: e.key,
                size: e.size,
                last_modified: e.last_modified.and_then(non_empty),
            }),
            _ => {}
        }
    }
    Ok(page)
}

/// Parses a ListObjectVersions page.
pub fn list_versions(text: &str) -> Result<VersionsPage, String> {
    let mut page = VersionsPage::default();
    for child in listing(text, "ListVersionsResult")?.children {
        match child {
            Child::IsTruncated(t) => page.is_truncated = truthy(&t),
            Child::NextKeyMarker(t) => page.next_key_marker = non_empty(t),
            Child::NextVersionIdMarker(t) => page.next_version_id_marker = non_empty(t),
            Child::Version(e) => page.entries.push(e.into_version(false)),
            Child::DeleteMarker(e) => page.entries.push(e.into_version(true)),
            _ => {}
        }
    }
    Ok(page)
}

/// Escapes text for an XML element or attribute.
pub fn xml_escape(text: &str) -> String {
    quick_xml::escape::escape(text).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The seed's rule: every object expires after 30 days.
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

    /// The rule provision writes today: nothing current expires.
    fn retention_rule() -> Lifecycle {
        Lifecycle {
            id: "ttl".into(),
            enabled: true,
            expiration_days: None,
            expired_object_delete_marker: true,
            noncurrent_days: Some(7),
            abort_incomplete_multipart_days: Some(1),
        }
    }

    #[test]
    fn lifecycle_round_trips() {
        let xml = lifecycle_xml(&rule());
        assert!(xml.starts_with(&format!("<LifecycleConfiguration xmlns=\"{S3_XMLNS}\">")));
        assert!(
            xml.contains("<ID>nix-cache-expiry</ID><Prefix/><Status>Enabled</Status>"),
            "{xml}"
        );
        assert_eq!(parse_lifecycle(&xml).unwrap(), vec![rule()]);
        let odd = Lifecycle {
            id: "a<&>b".into(),
            enabled: false,
            expiration_days: None,
            expired_object_delete_marker: false,
            noncurrent_days: None,
            abort_incomplete_multipart_days: Some(2),
        };
        assert_eq!(parse_lifecycle(&lifecycle_xml(&odd)).unwrap(), vec![odd]);
    }

    #[test]
    fn the_retention_rule_is_written_as_s3_documents_it() {
        let xml = lifecycle_xml(&retention_rule());
        assert!(
            xml.contains(
                "<Status>Enabled</Status>\
                 <Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration>\
                 <NoncurrentVersionExpiration><NoncurrentDays>7</NoncurrentDays></NoncurrentVersionExpiration>\
                 <AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload>"
            ),
            "{xml}"
        );
        assert!(!xml.contains("<Days>"), "{xml}");
        assert_eq!(parse_lifecycle(&xml).unwrap(), vec![retention_rule()]);
    }

    #[test]
    fn lifecycle_reads_what_servers_send() {
        // Filter instead of Prefix, whitespace, two rules, an unknown element.
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<LifecycleConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Rule><ID>expire</ID><Filter><Prefix></Prefix></Filter><Status>Enabled</Status>
    <Transition><Days>5</Days></Transition><Expiration><Days> 30 </Days></Expiration><NoncurrentVersionExpiration><NoncurrentDays>3</NoncurrentDays></NoncurrentVersionExpiration></Rule>
  <Rule><ID>abort</ID><Status>Disabled</Status>
    <AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>
</LifecycleConfiguration>"#;
        let rules = parse_lifecycle(xml).unwrap();
        assert_eq!(rules.len(), 2);
        assert_eq!(
            (
                rules[0].id.as_str(),
                rules[0].enabled,
                rules[0].expiration_days
            ),
            ("expire", true, Some(30))
        );
        assert_eq!(rules[0].abort_incomplete_multipart_days, None);
        assert!(!rules[1].enabled);
        assert_eq!(rules[1].abort_incomplete_multipart_days, Some(2));
        assert!(parse_lifecycle("<Error/>").is_err());
        assert!(parse_lifecycle("not xml").is_err());
        assert!(parse_lifecycle(
            "<LifecycleConfiguration><Rule><Status>Enabled</Status><Expiration><Days>x</Days></Expiration></Rule></LifecycleConfiguration>"
        )
        .is_err());
        assert_eq!(
            parse_lifecycle("<LifecycleConfiguration/>").unwrap(),
            vec![]
        );
    }

    #[test]
    fn error_bodies() {
        let e = error_body("<?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code><Message>a &amp; b</Message><StringToSign>AWS4</StringToSign></Error>").unwrap();
        assert_eq!(e.code.as_deref(), Some("SignatureDoesNotMatch"));
        assert_eq!(e.message.as_deref(), Some("a & b"));
        let empty = error_body("<Error><Code></Code></Error>").unwrap();
        assert_eq!(empty, ErrorBody::default());
        assert!(error_body("").is_none());
        assert!(error_body("<html><body>502</body></html>").is_none());
        assert!(error_body("<ListBucketResult/>").is_none());
    }

    #[test]
    fn versioning() {
        assert_eq!(versioning_status("").unwrap(), None);
        assert_eq!(
            versioning_status("<VersioningConfiguration/>").unwrap(),
            None
        );
        assert_eq!(
            versioning_status(&versioning_xml(true)).unwrap().as_deref(),
            Some("Enabled")
        );
        assert_eq!(
            versioning_status(&versioning_xml(false))
                .unwrap()
                .as_deref(),
            Some("Suspended")
        );
        assert!(versioning_status("garbage").is_err());
        assert_eq!(
            versioning_status("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<GetBucketVersioningResponse xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"/>").unwrap(),
            None,
            "moto's answer for a bucket never versioned"
        );
    }

    #[test]
    fn listings() {
        let page = list_objects("<ListBucketResult xmlns=\"x\"><Name>b</Name><IsTruncated>true</IsTruncated><Contents><Key>a</Key><LastModified>2026-11-02T10:00:00.000Z</LastModified><Size>1</Size></Contents><Contents><Key>b &amp; c</Key></Contents><NextContinuationToken>1/a+b==</NextContinuationToken></ListBucketResult>").unwrap();
        assert_eq!(
            page,
            ObjectsPage {
                objects: vec![
                    ListedObject {
                        key: "a".into(),
                        size: Some(1),
                        last_modified: Some("2026-11-02T10:00:00.000Z".into()),
                    },
                    ListedObject {
                        key: "b & c".into(),
                        ..ListedObject::default()
                    },
                ],
                is_truncated: true,
                next_continuation_token: Some("1/a+b==".into()),
            }
        );
        let empty = list_objects("<ListBucketResult><IsTruncated>false</IsTruncated><KeyCount>0</KeyCount></ListBucketResult>").unwrap();
        assert_eq!(empty, ObjectsPage::default());
        assert!(list_objects("<Error/>").is_err());
        assert!(list_objects("<html>502</html>").is_err());

        let versions = list_versions("<ListVersionsResult><Name>b</Name><IsTruncated>true</IsTruncated><Version><Key>k</Key><VersionId>v1</VersionId><IsLatest>true</IsLatest></Version><DeleteMarker><Key>k</Key><VersionId>v2</VersionId></DeleteMarker><Version><Key>j</Key></Version><NextKeyMarker>k</NextKeyMarker><NextVersionIdMarker>v2</NextVersionIdMarker></ListVersionsResult>").unwrap();
        assert_eq!(
            versions.entries,
            [
                ("k".into(), "v1".into(), false),
                ("k".into(), "v2".into(), true),
                ("j".into(), "null".into(), false)
            ]
        );
        assert!(versions.is_truncated);
        assert_eq!(
            (
                versions.next_key_marker.as_deref(),
                versions.next_version_id_marker.as_deref()
            ),
            (Some("k"), Some("v2"))
        );
        assert!(list_versions("<ListBucketResult/>").is_err());
    }

    #[test]
    fn escaping() {
        assert_eq!(xml_escape("<a&'\">"), "&lt;a&amp;&apos;&quot;&gt;");
    }
}
