//! The Worker's S3 endpoint end to end, with real processes on 127.0.0.1: the built Worker
//! under workerd (Miniflare), `s3s-fs` verifying SigV4 behind a proxy that counts origin
//! requests, curl's own SigV4 signer (`--aws-sigv4`, the signer Nix 2.33 uses for `s3://`;
//! uploads with `-T` are `UNSIGNED-PAYLOAD` like Nix's), boto3, and Nix 2.8 reading back.
//!
//! - `curl_pushes_a_big_nar_in_parts_as_nix_does`: `MAX_UPLOAD_BYTES` of 16 MiB and a 40 MiB
//!   NAR: the requests Nix 2.33 makes (HEADs, create, three parts, complete, the narinfo);
//!   then `nix copy --from` the Worker, trusting only the Worker's key, verifies; the same
//!   for a small NAR in one PUT; a `read` credential reads but may not upload; an abort.
//! - `boto3_pushes_the_same_with_upload_file`: boto3's multipart `upload_file`, then the
//!   narinfo with `put_object`; `nix copy --from` verifies.
//! - `refusals_write_nothing`: wrong secret, expired and `read` credentials for a write, a date
//!   20 minutes old, a single PUT over the limit, an `aws-chunked` body, another bucket, a key
//!   outside the route table, a narinfo whose NAR is missing or shorter than `FileSize`: S3's
//!   codes and statuses, no write at the origin, no file in the bucket.
//! - `a_complete_answered_200_with_an_error_is_an_error`: a scripted origin.
//!
//! Every test checks that no secret, derived secret or token shows in a response or the log.

mod s3_support;
mod support;

use std::fs;
use std::process::Command;

use nix_spaces_cache::sigv4;
use nix_spaces_cache::token::Scope;
use s3_support::{
    assert_s3_error, copy_back, curl, files_in, header_value, now, signed, xml_text, BigPath,
    Secrets, Stack, BUCKET, LIMIT, MIB,
};
use support::http::Response;
use support::upload::Body;
use support::{
    origin_requests_with_method, random_hex, raw_answer, temp_dir, ScriptedOrigin, Worker,
};

#[test]
fn curl_pushes_a_big_nar_in_parts_as_nix_does() {
    let stack = Stack::start();
    let big = BigPath::new(40 * MIB);
    let nar = fs::read(big.nar()).unwrap();
    assert!(nar.len() as u64 > 2 * LIMIT && (nar.len() as u64) < 3 * LIMIT);
    let cred = stack.secrets.credential(Scope::Write, 3600);
    let w = &stack.worker;
    let object = |key: &str| format!("/{BUCKET}/{key}");
    let mut texts = Vec::new();

    // Nix opens the store: nix-cache-info; then asks for the narinfo and the NAR.
    let (status, _, _) = curl(w, &cred, "HEAD", &object("nix-cache-info"), &[]);
    assert_eq!(status, 200, "HEAD nix-cache-info");
    let (status, _, body) = curl(w, &cred, "GET", &object("nix-cache-info"), &[]);
    assert_eq!(status, 200);
    assert!(body.contains("StoreDir: /nix/store"), "{body}");
    let (status, _, _) = curl(w, &cred, "HEAD", &object(&big.narinfo_key()), &[]);
    assert_eq!(status, 404, "HEAD of a narinfo not there yet");
    let (status, _, _) = curl(w, &cred, "HEAD", &object(&big.nar_key()), &[]);
    assert_eq!(status, 404, "HEAD of a NAR not there yet");

    // A single PUT of the whole NAR is over the limit: EntityTooLarge, nothing written.
    let (status, _, body) = curl(
        w,
        &cred,
        "PUT",
        &object(&big.nar_key()),
        &["-T", big.nar().to_str().unwrap()],
    );
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("<Code>EntityTooLarge</Code>"), "{body}");
    texts.push(body);

    // Create, three parts of at most 16 MiB, complete.
    let (status, _, body) = curl(
        w,
        &cred,
        "POST",
        &object(&format!("{}?uploads=", big.nar_key())),
        &[],
    );
    assert_eq!(status, 200, "create: {body}");
    let upload_id = xml_text(&body, "UploadId").expect("an UploadId");
    let parts_dir = temp_dir("parts-");
    let mut etags = Vec::new();
    for (i, piece) in nar.chunks(LIMIT as usize).enumerate() {
        let part = parts_dir.path().join(format!("part{}", i + 1));
        fs::write(&part, piece).unwrap();
        let (status, headers, body) = curl(
            w,
            &cred,
            "PUT",
            &object(&format!(
                "{}?partNumber={}&uploadId={upload_id}",
                big.nar_key(),
                i + 1
            )),
            &["-T", part.to_str().unwrap()],
        );
        assert_eq!(status, 200, "part {}: {body}", i + 1);
        etags.push(header_value(&headers, "etag").expect("an ETag on the part"));
        texts.push(headers);
    }
    assert_eq!(etags.len(), 3);
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (i, etag) in etags.iter().enumerate() {
        xml.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>{etag}</ETag></Part>",
            i + 1
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    let (status, _, body) = curl(
        w,
        &cred,
        "POST",
        &object(&format!("{}?uploadId={upload_id}", big.nar_key())),
        &["-H", "content-type: application/xml", "--data-binary", &xml],
    );
    assert_eq!(status, 200, "complete: {body}");
    assert!(body.contains("CompleteMultipartUploadResult"), "{body}");
    let stored = fs::read(stack.bucket.path().join(big.nar_key())).expect("the NAR is stored");
    assert!(stored == nar, "the stored NAR is the NAR");

    // The narinfo last, in one PUT: checked against the NAR's size, signed by the Worker.
    let (status, _, body) = curl(
        w,
        &cred,
        "PUT",
        &object(&big.narinfo_key()),
        &["-T", big.narinfo().to_str().unwrap()],
    );
    assert_eq!(status, 200, "narinfo: {body}");
    let (status, _, narinfo) = curl(w, &cred, "GET", &object(&big.narinfo_key()), &[]);
    assert_eq!(status, 200);
    assert!(narinfo.contains("Sig: s3-test-1:"), "{narinfo}");
    texts.push(narinfo);

    // Every part went to the origin at most 16 MiB at a time, with its length.
    let parts: Vec<_> = origin_requests_with_method(&stack.origin, "PUT")
        .into_iter()
        .filter(|r| r.target.contains("partNumber="))
        .collect();
    assert_eq!(parts.len(), 3);
    for p in &parts {
        let len: u64 = p
            .header("content-length")
            .expect("Content-Length kept")
            .parse()
            .unwrap();
        assert!(len <= LIMIT);
    }

    // A read credential reads (and may not start an upload); an upload begun can be aborted.
    let reader = stack.secrets.credential(Scope::Read, 3600);
    let (status, _, body) = curl(w, &reader, "GET", &object(&big.narinfo_key()), &[]);
    assert_eq!(status, 200, "{body}");
    let (status, _, body) = curl(
        w,
        &reader,
        "POST",
        &object(&format!("{}?uploads=", big.nar_key())),
        &[],
    );
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
    let log_key = "log/0wplwx3f43xqwv17x8n1z5qk64ll860d-big.drv";
    let (status, _, body) = curl(
        w,
        &cred,
        "POST",
        &object(&format!("{log_key}?uploads=")),
        &[],
    );
    assert_eq!(status, 200, "create: {body}");
    let second = xml_text(&body, "UploadId").expect("an UploadId");
    let (status, _, body) = curl(
        w,
        &cred,
        "DELETE",
        &object(&format!("{log_key}?uploadId={second}")),
        &[],
    );
    assert_eq!(status, 204, "abort: {body}");
    assert_eq!(
        origin_requests_with_method(&stack.origin, "DELETE").len(),
        1,
        "the abort reached the origin"
    );
    let (status, _, body) = curl(
        w,
        &cred,
        "PUT",
        &object(&format!("{log_key}?partNumber=1&uploadId={second}")),
        &["-T", big.narinfo().to_str().unwrap()],
    );
    // S3 says NoSuchUpload (passed on as it is); s3s-fs says AccessDenied, passed on too.
    assert_eq!(status, 403, "a part of an aborted upload: {body}");
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");

    // A NAR under the threshold goes in one PUT (checked against its name), twice: the
    // second finds it there.
    let small = BigPath::new(4096);
    for round in 0..2 {
        let (status, _, body) = curl(
            w,
            &cred,
            "PUT",
            &object(&small.nar_key()),
            &["-T", small.nar().to_str().unwrap()],
        );
        assert_eq!(status, 200, "single PUT of a NAR, round {round}: {body}");
    }
    let (status, _, body) = curl(
        w,
        &cred,
        "PUT",
        &object(&small.narinfo_key()),
        &["-T", small.narinfo().to_str().unwrap()],
    );
    assert_eq!(status, 200, "its narinfo: {body}");

    copy_back(w, &stack.secrets, &big.store_path);
    copy_back(w, &stack.secrets, &small.store_path);
    texts.push(stack.worker.process.log_tail());
    stack.secrets.assert_kept(&[&cred.1, &reader.1], &texts);
}

#[test]
fn boto3_pushes_the_same_with_upload_file() {
    let stack = Stack::start();
    let big = BigPath::new(40 * MIB);
    let cred = stack.secrets.credential(Scope::Write, 3600);
    let script = r#"
import json, os, sys
import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
endpoint, bucket, nar_key, nar, narinfo_key, narinfo = sys.argv[1:7]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
    config=Config(s3={"addressing_style": "path", "payload_signing_enabled": False},
                  request_checksum_calculation="when_required",
                  response_checksum_validation="when_required",
                  retries={"max_attempts": 1}))
mib = 1024 * 1024
s3.upload_file(nar, bucket, nar_key,
    Config=TransferConfig(multipart_threshold=8 * mib, multipart_chunksize=16 * mib, use_threads=False))
with open(narinfo, "rb") as f:
    s3.put_object(Bucket=bucket, Key=narinfo_key, Body=f.read())
head = s3.head_object(Bucket=bucket, Key=nar_key)
try:
    s3.put_object(Bucket="another-bucket", Key=narinfo_key, Body=b"x")
    other = "accepted"
except s3.exceptions.ClientError as e:
    other = e.response["Error"]["Code"]
print(json.dumps({"length": head["ContentLength"], "other": other}))
"#;
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(stack.worker.url())
        .arg(BUCKET)
        .arg(big.nar_key())
        .arg(big.nar())
        .arg(big.narinfo_key())
        .arg(big.narinfo())
        .env("AWS_ACCESS_KEY_ID", &cred.0)
        .env("AWS_SECRET_ACCESS_KEY", &cred.1)
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .output()
        .expect("run python3 with boto3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "boto3: {stderr}\n{}",
        stack.worker.process.log_tail()
    );
    let result: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(result["length"], fs::metadata(big.nar()).unwrap().len());
    assert_eq!(result["other"], "NoSuchBucket");
    let creates = origin_requests_with_method(&stack.origin, "POST");
    assert!(
        creates.iter().any(|r| r.target.contains("uploads")),
        "upload_file went multipart"
    );
    assert!(
        fs::read(stack.bucket.path().join(big.nar_key())).unwrap() == fs::read(big.nar()).unwrap()
    );
    copy_back(&stack.worker, &stack.secrets, &big.store_path);
    stack.secrets.assert_kept(
        &[&cred.1],
        &[stdout, stderr, stack.worker.process.log_tail()],
    );
}

#[test]
fn refusals_write_nothing() {
    let stack = Stack::start();
    let w = &stack.worker;
    let big = BigPath::new(LIMIT + MIB);
    let small = BigPath::new(4096);
    let write = stack.secrets.credential(Scope::Write, 3600);
    let read = stack.secrets.credential(Scope::Read, 3600);
    let expired = stack.secrets.credential(Scope::Write, -60);
    let wrong = (write.0.clone(), "0".repeat(64));
    let nar = fs::read(small.nar()).unwrap();
    let nar_target = format!("/{BUCKET}/{}", small.nar_key());
    let unsigned = sigv4::UNSIGNED_PAYLOAD;
    let t = now();
    let mut responses = Vec::new();
    let mut check = |r: Response, status, code: &str, what: &str| {
        assert_s3_error(&r, status, code, what);
        responses.push(r.raw_text());
    };

    let put_nar = |cred: &(String, String), at: u64| {
        signed(
            w,
            cred,
            at,
            "PUT",
            &nar_target,
            &[],
            unsigned,
            Body::Bytes(&nar),
        )
    };
    check(
        put_nar(&wrong, t),
        403,
        "SignatureDoesNotMatch",
        "wrong secret",
    );
    check(
        put_nar(&expired, t),
        400,
        "ExpiredToken",
        "expired credential",
    );
    check(put_nar(&read, t), 403, "AccessDenied", "read credential");
    check(
        put_nar(&write, t - 20 * 60),
        403,
        "RequestTimeTooSkewed",
        "a date 20 minutes old",
    );
    check(
        signed(
            w,
            &write,
            t,
            "PUT",
            &format!("/{BUCKET}/{}", big.nar_key()),
            &[],
            unsigned,
            Body::File(&big.nar()),
        ),
        400,
        "EntityTooLarge",
        "a single PUT over the limit",
    );
    check(
        signed(
            w,
            &write,
            t,
            "PUT",
            &nar_target,
            &[
                ("content-encoding", "aws-chunked"),
                ("x-amz-decoded-content-length", "10"),
            ],
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
            Body::Bytes(&nar),
        ),
        501,
        "NotImplemented",
        "an aws-chunked body",
    );
    check(
        signed(
            w,
            &write,
            t,
            "PUT",
            &format!("/another-bucket/{}", small.nar_key()),
            &[],
            unsigned,
            Body::Bytes(&nar),
        ),
        404,
        "NoSuchBucket",
        "another bucket",
    );
    check(
        signed(
            w,
            &write,
            t,
            "PUT",
            &format!("/{BUCKET}/secrets.txt"),
            &[],
            unsigned,
            Body::Bytes(b"hello"),
        ),
        403,
        "AccessDenied",
        "a key outside the route table",
    );
    check(
        signed(
            w,
            &write,
            t,
            "GET",
            &format!("/{BUCKET}/secrets.txt"),
            &[],
            sigv4::EMPTY_SHA256,
            Body::Bytes(b""),
        ),
        404,
        "NoSuchKey",
        "reading a key outside the route table",
    );
    check(
        signed(
            w,
            &write,
            t,
            "GET",
            &format!("/{BUCKET}/{}?acl", small.nar_key()),
            &[],
            sigv4::EMPTY_SHA256,
            Body::Bytes(b""),
        ),
        501,
        "NotImplemented",
        "another operation",
    );
    let narinfo = fs::read(small.narinfo()).unwrap();
    let narinfo_target = format!("/{BUCKET}/{}", small.narinfo_key());
    check(
        signed(
            w,
            &write,
            t,
            "PUT",
            &narinfo_target,
            &[],
            unsigned,
            Body::Bytes(&narinfo),
        ),
        400,
        "InvalidRequest",
        "a narinfo whose NAR is missing",
    );
    // The NAR stored short: the narinfo's FileSize does not match.
    fs::create_dir_all(stack.bucket.path().join("nar")).unwrap();
    fs::write(
        stack.bucket.path().join(small.nar_key()),
        &nar[..nar.len() - 1],
    )
    .unwrap();
    check(
        signed(
            w,
            &write,
            t,
            "PUT",
            &narinfo_target,
            &[],
            unsigned,
            Body::Bytes(&narinfo),
        ),
        400,
        "InvalidRequest",
        "a narinfo whose NAR is shorter than FileSize",
    );
    fs::remove_file(stack.bucket.path().join(small.nar_key())).unwrap();
    check(
        signed(
            w,
            &write,
            t,
            "POST",
            &format!("{narinfo_target}?uploads="),
            &[],
            sigv4::EMPTY_SHA256,
            Body::Bytes(b""),
        ),
        400,
        "InvalidRequest",
        "a narinfo in parts",
    );
    let other = support::sha256_hex(b"other bytes");
    check(
        signed(
            w,
            &write,
            t,
            "PUT",
            &narinfo_target,
            &[],
            &other,
            Body::Bytes(&narinfo),
        ),
        400,
        "BadDigest",
        "a narinfo that does not hash to the SHA-256 it was signed with",
    );
    check(
        signed(
            w,
            &write,
            t,
            "PUT",
            &nar_target,
            &[],
            &other,
            Body::Bytes(&nar),
        ),
        400,
        "BadDigest",
        "a NAR signed with a SHA-256 that is not its name's",
    );
    let part = vec![0u8; (LIMIT + 1) as usize];
    check(
        signed(
            w,
            &write,
            t,
            "PUT",
            &format!("{nar_target}?partNumber=1&uploadId=x"),
            &[],
            unsigned,
            Body::Bytes(&part),
        ),
        400,
        "EntityTooLarge",
        "a part over the limit",
    );

    for method in ["PUT", "POST", "DELETE"] {
        assert_eq!(
            origin_requests_with_method(&stack.origin, method).len(),
            0,
            "a refused request reached the origin with {method}"
        );
    }
    assert_eq!(
        files_in(stack.bucket.path()),
        Vec::<String>::new(),
        "nothing written"
    );

    // The cache protocol is untouched: the same NAR through the HTTPS routes is a 404.
    let r = w.get(&format!("/{}", small.nar_key()));
    assert_eq!(r.status, 404);
    let mut texts = responses;
    texts.push(w.process.log_tail());
    stack
        .secrets
        .assert_kept(&[&write.1, &read.1, &expired.1], &texts);
}

#[test]
fn a_complete_answered_200_with_an_error_is_an_error() {
    let secrets = Secrets::new();
    let nar_key = "nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar";
    let created = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult><Bucket>{BUCKET}</Bucket><Key>{nar_key}</Key><UploadId>UP1</UploadId></InitiateMultipartUploadResult>"
    );
    let failed = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message></Error>";
    let origin = ScriptedOrigin::start(vec![
        (
            "?uploads=".into(),
            raw_answer(
                "200 OK",
                &[
                    ("content-length", &created.len().to_string()),
                    ("content-type", "application/xml"),
                ],
                created.as_bytes(),
            ),
        ),
        (
            "?uploadId=UP1".into(),
            raw_answer(
                "200 OK",
                &[("content-type", "application/xml")],
                failed.as_bytes(),
            ),
        ),
    ]);
    let base = vec![
        ("SPACES_ENDPOINT".to_string(), origin.url()),
        ("SPACES_BUCKET".to_string(), BUCKET.to_string()),
        ("SPACES_REGION".to_string(), "us-east-1".to_string()),
        ("SPACES_ACCESS_KEY_ID".to_string(), "AKSCRIPTED".to_string()),
        ("SPACES_SECRET_ACCESS_KEY".to_string(), random_hex(20)),
        ("STORE_DIR".to_string(), "/nix/store".to_string()),
    ];
    let worker = Worker::start(&secrets.bindings(base));
    let cred = secrets.credential(Scope::Write, 3600);
    let (status, _, body) = curl(
        &worker,
        &cred,
        "POST",
        &format!("/{BUCKET}/{nar_key}?uploads="),
        &[],
    );
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<UploadId>UP1</UploadId>"), "{body}");
    let xml = "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>\"e\"</ETag></Part></CompleteMultipartUpload>";
    let (status, _, body) = curl(
        &worker,
        &cred,
        "POST",
        &format!("/{BUCKET}/{nar_key}?uploadId=UP1"),
        &["-H", "content-type: application/xml", "--data-binary", xml],
    );
    assert_eq!(status, 500, "the client sees the failure: {body}");
    assert!(body.contains("<Code>InternalError</Code>"), "{body}");
    assert_eq!(origin.count_for("?uploadId=UP1"), 1);
    secrets.assert_kept(&[&cred.1], &[body, worker.process.log_tail()]);
}
