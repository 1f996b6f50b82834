//! The Worker's S3 endpoint end to end, with real processes on 127.0.0.1: the built Worker
//! under workerd (Miniflare), `s3s-fs` verifying SigV4 behind a proxy that counts origin
//! requests, curl's own SigV4 signer (`--aws-sigv4`, the signer Nix 2.33 uses for `s3://`;
//! uploads with `-T` are `UNSIGNED-PAYLOAD` like Nix's), boto3, and Nix 2.8 reading back.
//!
//! - `curl_pushes_a_big_nar_in_parts_as_nix_does`: `MAX_UPLOAD_BYTES` of 16 MiB and a 40 MiB
//!   NAR: the requests Nix 2.33 makes (HEADs, create, three parts, complete, the narinfo);
//!   then `nix copy --from` the Worker, trusting only the Worker's key, verifies.
//! - `boto3_pushes_the_same_with_upload_file`: boto3's multipart `upload_file`, then the
//!   narinfo with `put_object`; `nix copy --from` verifies.
//! - `refusals_write_nothing`: wrong secret, expired and `read` credentials for a write, a date
//!   20 minutes old, a single PUT over the limit, an `aws-chunked` body, another bucket, a key
//!   outside the route table, a narinfo whose NAR is missing or shorter than `FileSize`: S3's
//!   codes and statuses, no write at the origin, no file in the bucket.
//! - `a_complete_answered_200_with_an_error_is_an_error`: a scripted origin.
//!
//! Every test checks that no secret, derived secret or token shows in a response or the log.

mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix_spaces_cache::s3::S3Credential;
use nix_spaces_cache::sigv4::{self, Credentials, PathMode, SignableRequest, SigningTime};
use nix_spaces_cache::token::{Scope, TokenSecret};
use support::http::Response;
use support::upload::{self, Body};
use support::{
    origin_requests_with_method, random_hex, raw_answer, temp_dir, NixEnv, S3Origin,
    ScriptedOrigin, Worker,
};

const BUCKET: &str = "nix-cache";
const MIB: u64 = 1024 * 1024;
const LIMIT: u64 = 16 * MIB;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `TOKEN_SECRET` and a Nix signing key of one stack.
struct Secrets {
    token_secret: String,
    signing_key: String,
    public_key: String,
}

impl Secrets {
    fn new() -> Secrets {
        let env = NixEnv::new();
        let out = env
            .nix(&["key", "generate-secret", "--key-name", "s3-test-1"])
            .output()
            .expect("nix key generate-secret");
        assert!(out.status.success());
        let signing_key = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let mut convert = env
            .nix(&["key", "convert-secret-to-public"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("nix key convert-secret-to-public");
        convert
            .stdin
            .take()
            .unwrap()
            .write_all(signing_key.as_bytes())
            .unwrap();
        let out = convert.wait_with_output().unwrap();
        assert!(out.status.success());
        Secrets {
            token_secret: random_hex(32),
            signing_key,
            public_key: String::from_utf8(out.stdout).unwrap().trim().to_string(),
        }
    }

    /// An S3 credential (id, secret) as `provision token --s3` prints it.
    fn credential(&self, scope: Scope, valid_for: i64) -> (String, String) {
        let c = S3Credential::new("e2e", scope, (now() as i64 + valid_for) as u64).unwrap();
        let secret = c.secret(&TokenSecret::new(&self.token_secret));
        (c.access_key_id(), secret.expose().to_string())
    }

    fn bindings(&self, base: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut b = base;
        b.push(("TOKEN_SECRET".into(), self.token_secret.clone()));
        b.push(("SIGNING_KEY".into(), self.signing_key.clone()));
        b.push(("MAX_UPLOAD_BYTES".into(), LIMIT.to_string()));
        b
    }

    /// Neither `TOKEN_SECRET`, the signing key nor any of `derived` in `texts`.
    fn assert_kept(&self, derived: &[&str], texts: &[String]) {
        let key_part = self.signing_key.split_once(':').unwrap().1;
        let mut secrets = vec![self.token_secret.as_str(), key_part];
        secrets.extend_from_slice(derived);
        for text in texts {
            for secret in &secrets {
                assert!(!text.contains(secret), "a response or log carries a secret");
            }
        }
    }
}

/// A store path whose NAR has `size` random bytes (plus the NAR framing), exported
/// uncompressed to a `file://` cache: (store path, cache dir, the builder's Nix).
struct BigPath {
    store_path: String,
    cache: tempfile::TempDir,
    _env: NixEnv,
}

impl BigPath {
    fn new(size: u64) -> BigPath {
        let env = NixEnv::new();
        let dir = temp_dir("big-");
        let file = dir.path().join("blob");
        let mut f = fs::File::create(&file).unwrap();
        let mut left = size;
        let mut seed: u64 = 0x9e37_79b9_7f4a_7c15 ^ now();
        let mut buf = vec![0u8; MIB as usize];
        while left > 0 {
            for b in buf.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            let n = left.min(MIB) as usize;
            f.write_all(&buf[..n]).unwrap();
            left -= n as u64;
        }
        drop(f);
        let (ok, out, err) = env.run(&["store", "add-file", file.to_str().unwrap()]);
        assert!(ok, "nix store add-file: {err}");
        let store_path = out.trim().to_string();
        let cache = temp_dir("big-cache-");
        let to = format!("file://{}?compression=none", cache.path().display());
        let (ok, _, err) = env.run(&["copy", "--to", &to, &store_path]);
        assert!(ok, "nix copy --to file://: {err}");
        BigPath {
            store_path,
            cache,
            _env: env,
        }
    }

    fn narinfo_key(&self) -> String {
        let hash = self
            .store_path
            .strip_prefix("/nix/store/")
            .unwrap()
            .split('-')
            .next()
            .unwrap();
        format!("{hash}.narinfo")
    }

    fn narinfo(&self) -> PathBuf {
        self.cache.path().join(self.narinfo_key())
    }

    /// `nar/<filehash>.nar`, from the narinfo's `URL:`.
    fn nar_key(&self) -> String {
        let text = fs::read_to_string(self.narinfo()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("URL: "))
            .unwrap()
            .to_string()
    }

    fn nar(&self) -> PathBuf {
        self.cache.path().join(self.nar_key())
    }
}

/// `nix copy --from` the Worker into a fresh store, trusting only the Worker's key; asserts the
/// path arrived and verifies.
fn copy_back(worker: &Worker, secrets: &Secrets, store_path: &str) {
    let env = NixEnv::new();
    let (ok, _, err) = env.run(&[
        "copy",
        "--from",
        &worker.url(),
        "--option",
        "require-sigs",
        "true",
        "--option",
        "trusted-public-keys",
        &secrets.public_key,
        store_path,
    ]);
    assert!(ok, "nix copy --from the Worker: {err}");
    let (ok, _, err) = env.run(&[
        "store",
        "verify",
        "--sigs-needed",
        "1",
        "--option",
        "trusted-public-keys",
        &secrets.public_key,
        store_path,
    ]);
    assert!(ok, "nix store verify: {err}");
}

/// One curl call signed with `--aws-sigv4`, the credential given on stdin (not argv).
/// Returns (status, headers, body).
fn curl(
    worker: &Worker,
    cred: &(String, String),
    method: &str,
    target: &str,
    args: &[&str],
) -> (u16, String, String) {
    curl_at(&worker.url(), cred, method, target, args)
}

/// [`curl`] against any S3 endpoint at `base` (`http://127.0.0.1:PORT`).
fn curl_at(
    base: &str,
    cred: &(String, String),
    method: &str,
    target: &str,
    args: &[&str],
) -> (u16, String, String) {
    let dir = temp_dir("curl-");
    let headers = dir.path().join("headers");
    let body = dir.path().join("body");
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-K", "-", "--aws-sigv4", "aws:amz:us-east-1:s3"])
        .arg("-D")
        .arg(&headers)
        .arg("-o")
        .arg(&body)
        .args(["-w", "%{http_code}"]);
    if method == "HEAD" {
        cmd.arg("-I");
    } else {
        cmd.args(["-X", method]);
    }
    // CreateMultipartUpload is written `?uploads=` here: curl 7.88 signs a bare `?uploads`
    // without the `=` that SigV4's canonical query has (later curl, as Nix 2.33 uses, adds it;
    // the Worker takes both, see `src/s3/verify/tests.rs`).
    // curl 8 (which Nix 2.33 links) sends x-amz-content-sha256 itself for service s3:
    // UNSIGNED-PAYLOAD for `-T`, else the hash of the data; this machine's curl 7.88 signs
    // the header when it is given, with the same value as the payload hash.
    let payload = if args.contains(&"-T") {
        sigv4::UNSIGNED_PAYLOAD.to_string()
    } else {
        let data = args
            .iter()
            .position(|a| *a == "--data-binary")
            .map(|i| args[i + 1])
            .unwrap_or_default();
        support::sha256_hex(data.as_bytes())
    };
    cmd.arg("-H")
        .arg(format!("x-amz-content-sha256: {payload}"))
        .args(args)
        .arg(format!("{base}{target}"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run curl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("user = \"{}:{}\"\n", cred.0, cred.1).as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "curl {method} {target}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let status = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (
        status,
        fs::read_to_string(&headers).unwrap_or_default(),
        fs::read_to_string(&body).unwrap_or_default(),
    )
}

fn header_value(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].to_string())
}

/// The files in a bucket directory, relative to it.
fn files_in(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The stack: an empty bucket served by s3s-fs, the Worker in front of it.
struct Stack {
    secrets: Secrets,
    bucket: tempfile::TempDir,
    origin: S3Origin,
    worker: Worker,
}

impl Stack {
    fn start() -> Stack {
        let secrets = Secrets::new();
        let bucket = temp_dir("bucket-");
        let origin = S3Origin::start(bucket.path(), BUCKET);
        let worker = Worker::start(&secrets.bindings(origin.bindings()));
        Stack {
            secrets,
            bucket,
            origin,
            worker,
        }
    }
}

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

    copy_back(w, &stack.secrets, &big.store_path);
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

/// A request signed by the workspace signer at `at`, sent raw.
#[allow(clippy::too_many_arguments)]
fn signed(
    worker: &Worker,
    cred: &(String, String),
    at: u64,
    method: &str,
    target: &str,
    extra: &[(&str, &str)],
    payload_hash: &str,
    body: Body,
) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let time = SigningTime::from_unix_seconds(at);
    let host = format!("127.0.0.1:{}", worker.port);
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), host),
        ("x-amz-content-sha256".into(), payload_hash.into()),
        ("x-amz-date".into(), time.amz_date()),
    ];
    for (n, v) in extra {
        headers.push((n.to_string(), v.to_string()));
    }
    let s = sigv4::sign(
        &SignableRequest {
            method,
            path,
            query,
            headers: &headers,
            payload_hash,
        },
        &Credentials::new(cred.0.clone(), cred.1.clone()),
        time,
        sigv4::Scope {
            region: "us-east-1",
            service: "s3",
        },
        PathMode::S3,
    );
    let mut send: Vec<(&str, &str)> = headers[1..]
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    send.push(("Authorization", &s.authorization));
    upload::send(worker.port, method, target, &send, body)
}

fn assert_s3_error(r: &Response, status: u16, code: &str, what: &str) {
    let text = r.text();
    assert_eq!(r.status, status, "{what}: {text}");
    assert!(
        text.contains(&format!("<Code>{code}</Code>")),
        "{what}: {text}"
    );
    assert_eq!(r.header("content-type"), Some("application/xml"), "{what}");
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

/// The pids of the workerd processes serving `worker` (in its process group).
fn workerd_pids(worker: &Worker) -> Vec<u32> {
    let group = worker.process.pid().to_string();
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Fields after the command name: state, ppid, pgrp, ...
        let pgrp = stat
            .rsplit(')')
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .nth(2);
        if comm.trim() == "workerd" && pgrp == Some(group.as_str()) {
            pids.push(pid);
        }
    }
    pids
}

fn status_kib(pids: &[u32], field: &str) -> u64 {
    pids.iter()
        .map(|pid| {
            fs::read_to_string(format!("/proc/{pid}/status"))
                .unwrap_or_default()
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{field}:")))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap_or(0)
        })
        .sum()
}

/// One multipart upload of `file` in `part` byte parts to `base`: create, parts one after the
/// other, complete. Returns the seconds it took.
fn multipart_once(
    base: &str,
    cred: &(String, String),
    target: &str,
    file: &Path,
    part: u64,
) -> f64 {
    let started = std::time::Instant::now();
    let (status, _, body) = curl_at(base, cred, "POST", &format!("{target}?uploads="), &[]);
    assert_eq!(status, 200, "create: {body}");
    let id = xml_text(&body, "UploadId").unwrap();
    let len = fs::metadata(file).unwrap().len();
    let parts = temp_dir("bench-parts-");
    let mut xml = String::from("<CompleteMultipartUpload>");
    let mut from = 0;
    let mut n = 1;
    let mut data = fs::File::open(file).unwrap();
    while from < len {
        let size = part.min(len - from);
        let piece = parts.path().join(format!("{n}"));
        let mut out = fs::File::create(&piece).unwrap();
        std::io::copy(&mut std::io::Read::take(&mut data, size), &mut out).unwrap();
        drop(out);
        let (status, headers, body) = curl_at(
            base,
            cred,
            "PUT",
            &format!("{target}?partNumber={n}&uploadId={id}"),
            // No wait for `100 Continue`: curl would wait up to a second for a `100` that
            // the Worker's local runtime does not send, which times curl, not the Worker.
            &[
                "--expect100-timeout",
                "0.001",
                "-T",
                piece.to_str().unwrap(),
            ],
        );
        assert_eq!(status, 200, "part {n}: {body}");
        let etag = header_value(&headers, "etag").unwrap();
        xml.push_str(&format!(
            "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
        ));
        fs::remove_file(&piece).unwrap();
        from += size;
        n += 1;
    }
    xml.push_str("</CompleteMultipartUpload>");
    let (status, _, body) = curl_at(
        base,
        cred,
        "POST",
        &format!("{target}?uploadId={id}"),
        &["-H", "content-type: application/xml", "--data-binary", &xml],
    );
    assert_eq!(status, 200, "complete: {body}");
    started.elapsed().as_secs_f64()
}

/// The figure of BENCHMARKS.md ("Multipart push through the S3 endpoint"): a NAR of
/// `BENCH_S3_MIB` MiB (256) pushed in 64 MiB parts with curl, straight to s3s-fs and through
/// the Worker, alternately, `BENCH_S3_ROUNDS` (3) times each; MB/s of each run, the ratio of
/// the medians, and the workerd process's resident memory idle and at its peak. Prints, never
/// asserts a speed. Splitting a part into its file is timed for both sides alike.
///
///     cargo test --test e2e_s3 bench_multipart -- --ignored --nocapture
#[test]
#[ignore = "a benchmark: run it by name with --ignored --nocapture"]
fn bench_multipart_through_the_worker_against_straight_to_s3s_fs() {
    let env_u64 = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let mib = env_u64("BENCH_S3_MIB", 256);
    let rounds = env_u64("BENCH_S3_ROUNDS", 3);
    let part = 64 * MIB;
    let secrets = Secrets::new();
    let bucket = temp_dir("bench-bucket-");
    let origin = S3Origin::start(bucket.path(), BUCKET);
    let direct = format!("http://127.0.0.1:{}", origin.direct_port);
    // The Worker talks to s3s-fs straight, as the direct client does (no counting proxy).
    let mut base = origin.bindings();
    base.retain(|(n, _)| n != "SPACES_ENDPOINT");
    base.push(("SPACES_ENDPOINT".into(), direct.clone()));
    let mut bindings = secrets.bindings(base);
    bindings.retain(|(n, _)| n != "MAX_UPLOAD_BYTES");
    let worker = Worker::start(&bindings);
    let pids = workerd_pids(&worker);
    assert!(!pids.is_empty(), "no workerd process found");
    let cred = secrets.credential(Scope::Write, 3600);
    let s3s = (origin.access_key.clone(), origin.secret_key.clone());
    let dir = temp_dir("bench-nar-");
    let file = dir.path().join("nar");
    {
        let mut f = fs::File::create(&file).unwrap();
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        let mut buf = vec![0u8; MIB as usize];
        for _ in 0..mib {
            for b in buf.iter_mut() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = seed as u8;
            }
            f.write_all(&buf).unwrap();
        }
    }
    let bytes = (mib * MIB) as f64;
    let target = format!("/{BUCKET}/nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar");
    // Warm-up: one small upload each way (the Worker's first request makes its isolate).
    let small = dir.path().join("small");
    fs::write(&small, vec![7u8; MIB as usize]).unwrap();
    multipart_once(&direct, &s3s, &target, &small, part);
    multipart_once(&worker.url(), &cred, &target, &small, part);
    let idle_kib = status_kib(&pids, "VmRSS");
    let (mut straight, mut through) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        let a = multipart_once(&direct, &s3s, &target, &file, part);
        let b = multipart_once(&worker.url(), &cred, &target, &file, part);
        straight.push(bytes / a / 1e6);
        through.push(bytes / b / 1e6);
        eprintln!(
            "round {}: straight {:.0} MB/s, through the Worker {:.0} MB/s",
            round + 1,
            straight[round as usize],
            through[round as usize]
        );
    }
    let stored = fs::metadata(
        bucket
            .path()
            .join("nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar"),
    )
    .unwrap()
    .len();
    assert_eq!(stored, mib * MIB, "the upload arrived whole");
    let peak_kib = status_kib(&pids, "VmHWM");
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v[v.len() / 2]
    };
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (s_runs, t_runs) = (fmt(&straight), fmt(&through));
    let (s, t) = (median(&mut straight), median(&mut through));
    println!("| NAR | parts | straight to s3s-fs MB/s (runs) | through the Worker MB/s (runs) | Worker / straight | workerd RSS idle / peak |");
    println!("|---|---|---:|---:|---:|---:|");
    println!(
        "| {mib} MiB | {} × 64 MiB | {s:.0} ({s_runs}) | {t:.0} ({t_runs}) | {:.2} | {} / {} MiB |",
        mib.div_ceil(64),
        t / s,
        idle_kib / 1024,
        peak_kib / 1024
    );
}
