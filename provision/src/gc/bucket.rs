//! The bucket gc works on, through the Spaces client: ListObjectsV2 pages, GET, HEAD, DELETE and
//! PUT of objects, each an S3 call sent (signed, retried) by [`SpacesClient::send`].

use anyhow::Context;
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::plan::Listed;
use super::run::{Bucket, ListPage};
use crate::api::spaces::{http_error, S3Call, SpacesClient};

/// Keys asked for per listing page (S3's most).
const PAGE_KEYS: u32 = 1000;

/// A bucket of a Spaces (or any S3) endpoint.
#[derive(Debug)]
pub struct SpacesBucket {
    pub client: SpacesClient,
    pub bucket: String,
}

impl SpacesBucket {
    fn object_call(&self, op: &'static str, method: &'static str, key: &str) -> S3Call {
        S3Call {
            op,
            method,
            bucket: self.bucket.clone(),
            key: Some(key.to_owned()),
            query: Vec::new(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Sends `call`; 2xx is the answer, 404 is `None`, anything else an error naming the call.
    fn send(&self, call: &S3Call) -> anyhow::Result<Option<crate::api::spaces::Answer>> {
        let answer = self.client.send(call)?;
        match answer.status {
            200..=299 => Ok(Some(answer)),
            404 => Ok(None),
            _ => Err(http_error(call, &answer).into()),
        }
    }
}

/// A ListObjectsV2 answer, the fields gc reads.
/// <https://docs.aws.amazon.com/AmazonS3/latest/API/API_ListObjectsV2.html>
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListBucketResult {
    #[serde(default)]
    contents: Vec<Contents>,
    #[serde(default)]
    is_truncated: bool,
    next_continuation_token: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Contents {
    key: String,
    size: u64,
    last_modified: String,
}

/// One ListObjectsV2 page, read.
pub fn parse_list_page(xml: &str) -> anyhow::Result<ListPage> {
    let result: ListBucketResult =
        quick_xml::de::from_str(xml).context("a ListObjectsV2 answer that is not a listing")?;
    let mut objects = Vec::with_capacity(result.contents.len());
    for entry in result.contents {
        let modified = OffsetDateTime::parse(&entry.last_modified, &Rfc3339)
            .with_context(|| {
                format!(
                    "LastModified {:?} of {:?} is not an ISO 8601 time",
                    entry.last_modified, entry.key
                )
            })?
            .unix_timestamp();
        objects.push(Listed {
            key: entry.key,
            size: entry.size,
            modified,
        });
    }
    let next = match (result.is_truncated, result.next_continuation_token) {
        (false, _) => None,
        (true, Some(token)) if !token.is_empty() => Some(token),
        (true, _) => anyhow::bail!("a truncated listing without a NextContinuationToken"),
    };
    Ok(ListPage { objects, next })
}

impl Bucket for SpacesBucket {
    fn list(&self, continuation: Option<&str>) -> anyhow::Result<ListPage> {
        let call = S3Call::list_objects(&self.bucket, continuation, PAGE_KEYS);
        let answer = self
            .send(&call)?
            .with_context(|| format!("ListObjectsV2 {}: no such bucket", call.resource()))?;
        parse_list_page(&String::from_utf8_lossy(&answer.body))
            .with_context(|| format!("ListObjectsV2 {}", call.resource()))
    }

    fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
        let call = self.object_call("GetObject", "GET", key);
        Ok(self.send(&call)?.map(|answer| answer.body))
    }

    fn exists(&self, key: &str) -> anyhow::Result<bool> {
        let call = self.object_call("HeadObject", "HEAD", key);
        Ok(self.send(&call)?.is_some())
    }

    fn delete(&self, key: &str) -> anyhow::Result<()> {
        let call = self.object_call("DeleteObject", "DELETE", key);
        self.send(&call).map(drop)
    }

    fn put(&self, key: &str, body: &[u8], content_type: &str) -> anyhow::Result<()> {
        let call = S3Call::put_object(&self.bucket, key, body, content_type);
        self.send(&call)?
            .with_context(|| format!("PutObject {}: no such bucket", call.resource()))
            .map(drop)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listing_page_is_read_as_s3_writes_it() {
        // The shape of AWS's own example, as Spaces and s3s answer it.
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>nix-store</Name><Prefix></Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>nar/a.nar.xz</Key><LastModified>2026-11-02T10:00:00.000Z</LastModified>
    <ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>434234</Size>
    <StorageClass>STANDARD</StorageClass></Contents>
  <Contents><Key>nix-cache-info</Key><LastModified>2026-11-01T00:00:00Z</LastModified>
    <ETag>"x"</ETag><Size>52</Size><StorageClass>STANDARD</StorageClass></Contents>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>"#;
        let page = parse_list_page(xml).unwrap();
        assert_eq!(page.objects.len(), 2);
        assert_eq!(page.objects[0].key, "nar/a.nar.xz");
        assert_eq!(page.objects[0].size, 434_234);
        assert_eq!(page.objects[0].modified, 1_793_613_600);
        assert_eq!(page.objects[1].modified, 1_793_491_200);
        assert_eq!(
            page.next.as_deref(),
            Some("1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=")
        );
    }

    #[test]
    fn an_empty_last_page_and_broken_pages() {
        let empty = r#"<ListBucketResult><Name>b</Name><KeyCount>0</KeyCount>
            <IsTruncated>false</IsTruncated></ListBucketResult>"#;
        let page = parse_list_page(empty).unwrap();
        assert!(page.objects.is_empty() && page.next.is_none());
        let endless = r#"<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>"#;
        assert!(parse_list_page(endless).is_err());
        let bad_time = r#"<ListBucketResult><IsTruncated>false</IsTruncated><Contents>
            <Key>k</Key><Size>1</Size><LastModified>yesterday</LastModified></Contents>
            </ListBucketResult>"#;
        assert!(format!("{:#}", parse_list_page(bad_time).unwrap_err()).contains("yesterday"));
        assert!(parse_list_page("<html>").is_err());
    }
}
