//! What the S3 endpoint's end-to-end tests and benchmark share: the stack (an empty bucket
//! under `s3s-fs`, the Worker in front of it, `TOKEN_SECRET` and a Nix signing key), S3
//! credentials as `provision token --s3` makes them, a store path with a big NAR, curl signing
//! with `--aws-sigv4`, requests signed by the workspace signer, and `nix copy --from` back.
#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nix_spaces_cache::s3::S3Credential;
use nix_spaces_cache::sigv4::{self, Credentials, PathMode, SignableRequest, SigningTime};
use nix_spaces_cache::token::{Scope, TokenSecret};

use crate::support::http::Response;
use crate::support::upload::{self, Body};
use crate::support::{self, random_hex, temp_dir, NixEnv, S3Origin, Worker};

pub const BUCKET: &str = "nix-cache";
pub const MIB: u64 = 1024 * 1024;
pub const LIMIT: u64 = 16 * MIB;

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `TOKEN_SECRET` and a Nix signing key of one stack.
pub struct Secrets {
    pub token_secret: String,
    pub signing_key: String,
    pub public_key: String,
}

impl Secrets {
    pub fn new() -> Secrets {
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
    pub fn credential(&self, scope: Scope, valid_for: i64) -> (String, String) {
        let c = S3Credential::new("e2e", scope, (now() as i64 + valid_for) as u64).unwrap();
        let secret = c.secret(&TokenSecret::new(&self.token_secret));
        (c.access_key_id(), secret.expose().to_string())
    }

    pub fn bindings(&self, base: Vec<(String, String)>) -> Vec<(String, String)> {
        let mut b = base;
        b.push(("TOKEN_SECRET".into(), self.token_secret.clone()));
        b.push(("SIGNING_KEY".into(), self.signing_key.clone()));
        b.push(("MAX_UPLOAD_BYTES".into(), LIMIT.to_string()));
        b
    }

    /// Neither `TOKEN_SECRET`, the signing key nor any of `derived` in `texts`.
    pub fn assert_kept(&self, derived: &[&str], texts: &[String]) {
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
pub struct BigPath {
    pub store_path: String,
    pub cache: tempfile::TempDir,
    _env: NixEnv,
}

impl BigPath {
    pub fn new(size: u64) -> BigPath {
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

    pub fn narinfo_key(&self) -> String {
        let hash = self
            .store_path
            .strip_prefix("/nix/store/")
            .unwrap()
            .split('-')
            .next()
            .unwrap();
        format!("{hash}.narinfo")
    }

    pub fn narinfo(&self) -> PathBuf {
        self.cache.path().join(self.narinfo_key())
    }

    /// `nar/<filehash>.nar`, from the narinfo's `URL:`.
    pub fn nar_key(&self) -> String {
        let text = fs::read_to_string(self.narinfo()).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("URL: "))
            .unwrap()
            .to_string()
    }

    pub fn nar(&self) -> PathBuf {
        self.cache.path().join(self.nar_key())
    }
}

/// `nix copy --from` the Worker into a fresh store, trusting only the Worker's key; asserts the
/// path arrived and verifies.
pub fn copy_back(worker: &Worker, secrets: &Secrets, store_path: &str) {
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
pub fn curl(
    worker: &Worker,
    cred: &(String, String),
    method: &str,
    target: &str,
    args: &[&str],
) -> (u16, String, String) {
    curl_at(&worker.url(), cred, method, target, args)
}

/// [`curl`] against any S3 endpoint at `base` (`http://127.0.0.1:PORT`).
pub fn curl_at(
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

pub fn header_value(headers: &str, name: &str) -> Option<String> {
    headers.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

pub fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    Some(xml[start..end].to_string())
}

/// The files in a bucket directory, relative to it.
pub fn files_in(dir: &Path) -> Vec<String> {
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
pub struct Stack {
    pub secrets: Secrets,
    pub bucket: tempfile::TempDir,
    pub origin: S3Origin,
    pub worker: Worker,
}

impl Stack {
    pub fn start() -> Stack {
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

/// A request signed by the workspace signer at `at`, sent raw.
#[allow(clippy::too_many_arguments)]
pub fn signed(
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

pub fn assert_s3_error(r: &Response, status: u16, code: &str, what: &str) {
    let text = r.text();
    assert_eq!(r.status, status, "{what}: {text}");
    assert!(
        text.contains(&format!("<Code>{code}</Code>")),
        "{what}: {text}"
    );
    assert_eq!(r.header("content-type"), Some("application/xml"), "{what}");
}
