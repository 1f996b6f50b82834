//! The bucket gc works on, through the Spaces client: ListObjectsV2 pages, GET, HEAD, DELETE and
//! PUT of objects, each an S3 call sent (signed, retried) by the one sender.

use anyhow::Context;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::plan::Listed;
use super::run::{Bucket, ListPage};
use crate::api::s3_xml::ListedObject;
use crate::api::send::Response;
use crate::api::spaces::{http_error, S3Call, SpacesClient};

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
    fn send(&self, call: &S3Call) -> anyhow::Result<Option<Response>> {
        let answer = self.client.send(call)?;
        match answer.status {
            200..=299 => Ok(Some(answer)),
            404 => Ok(None),
            _ => Err(http_error(call, &answer).into()),
        }
    }
}

/// A listing entry as gc needs it: its key, size and age.
pub fn listed(object: ListedObject) -> anyhow::Result<Listed> {
    let size = object
        .size
        .with_context(|| format!("{:?}: the listing gives no Size", object.key))?;
    let when = object
        .last_modified
        .with_context(|| format!("{:?}: the listing gives no LastModified", object.key))?;
    let modified = OffsetDateTime::parse(&when, &Rfc3339)
        .with_context(|| {
            format!(
                "{:?}: LastModified {when:?} is not an ISO 8601 time",
                object.key
            )
        })?
        .unix_timestamp();
    Ok(Listed {
        key: object.key,
        size,
        modified,
    })
}

impl Bucket for SpacesBucket {
    fn list(&self, continuation: Option<&str>) -> anyhow::Result<ListPage> {
        let (objects, next) = self.client.list_objects_page(&self.bucket, continuation)?;
        let objects = objects
            .into_iter()
            .map(listed)
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("ListObjectsV2 s3://{}", self.bucket))?;
        Ok(ListPage { objects, next })
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
    fn listing_entries_give_key_size_and_age() {
        let entry = |size, when: Option<&str>| ListedObject {
            key: "nar/a.nar.xz".into(),
            size,
            last_modified: when.map(str::to_string),
        };
        let l = listed(entry(Some(434_234), Some("2026-11-02T10:00:00.000Z"))).unwrap();
        assert_eq!((l.size, l.modified), (434_234, 1_793_613_600));
        let l = listed(entry(Some(1), Some("2026-11-01T00:00:00Z"))).unwrap();
        assert_eq!(l.modified, 1_793_491_200);
        for (size, when, says) in [
            (None, Some("2026-11-01T00:00:00Z"), "no Size"),
            (Some(1), None, "no LastModified"),
            (Some(1), Some("yesterday"), "yesterday"),
        ] {
            let err = format!("{:#}", listed(entry(size, when)).unwrap_err());
            assert!(err.contains(says), "{err}");
        }
    }
}
