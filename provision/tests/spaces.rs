//! The Spaces client against real S3 servers on 127.0.0.1: bucket settings against
//! `moto_server` in auth mode (signatures checked, wrong keys rejected), objects against
//! `s3s-fs` (SigV4 verified; it answers 501 to bucket settings), and the retry policy
//! against a tiny scripted HTTP peer.
//!
//! A missing server binary fails the test with a message saying how to install it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod moto;

use moto::{free_port, start_moto};
use nix_spaces_cache::sigv4::Credentials;
use provision::api::spaces::{
    anonymous_read_policy, policy_equivalent, BucketStatus, Lifecycle, SpacesClient, Versioning,
};
use provision::api::ApiError;

const REGION: &str = "fra1";

/// A server process started by a test, killed (by its pid) and reaped when dropped.
struct ServerGuard {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServerGuard {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Waits until the port accepts connections; panics if the process exits first.
    fn wait_ready(&mut self, name: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{name} exited before listening ({status}); its log:\n{}",
                    self.log_tail()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{name} did not listen on 127.0.0.1:{} within 60 s; its log:\n{}",
                self.port,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for ServerGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary's path on PATH, in `~/.cargo/bin` or in Python's scripts directory, or a
/// failing test naming the install step.
fn require_binary(name: &str, install: &str) -> PathBuf {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(Path::new(&home).join(".cargo/bin"));
    }
    // Where `pip install` puts scripts, which may not be on PATH.
    if let Ok(out) = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
    {
        dirs.push(PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .unwrap_or_else(|| {
            panic!("`{name}` is not installed (needed to test the Spaces client): {install}")
        })
}

fn spawn(mut command: Command, name: &str, port: u16, dir: tempfile::TempDir) -> ServerGuard {
    let log = dir.path().join(format!("{name}.log"));
    let log_file = std::fs::File::create(&log).unwrap();
    command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
    let mut guard = ServerGuard {
        child,
        port,
        log,
        _dir: dir,
    };
    guard.wait_ready(name);
    guard
}

// ---------------------------------------------------------------------------------------------
// moto: bucket settings, in auth mode
// ---------------------------------------------------------------------------------------------

// moto in auth mode, with an IAM user allowed `s3:*` and its key: `moto::start_moto`, shared
// with the CLI and S3 fault tests.

fn client(url: &str, key_id: &str, secret: &str) -> SpacesClient {
    SpacesClient::new(url, REGION, Credentials::new(key_id, secret))
        .unwrap()
        .with_retry(Duration::from_millis(10), 2)
}

fn seed_lifecycle() -> Lifecycle {
    Lifecycle {
        id: "nix-cache-expiry".into(),
        enabled: true,
        expiration_days: Some(30),
        expired_object_delete_marker: false,
        noncurrent_days: None,
        abort_incomplete_multipart_days: Some(1),
    }
}

const CACHE_INFO: &[u8] = b"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n";

#[test]
fn moto_bucket_settings_round_trip() {
    let moto = start_moto();
    let (key_id, secret) = (moto.key_id.clone(), moto.secret.clone());
    let s3 = client(&moto.url(), &key_id, &secret).with_page_size(2);
    let bucket = "nix-store";

    // The bucket: missing, created (twice: idempotent), ours.
    assert_eq!(s3.head_bucket(bucket).unwrap(), BucketStatus::Missing);
    s3.create_bucket(bucket).unwrap();
    s3.create_bucket(bucket).unwrap();
    assert_eq!(s3.head_bucket(bucket).unwrap(), BucketStatus::Owned);

    // Versioning: never, enabled, suspended, enabled.
    assert_eq!(s3.get_versioning(bucket).unwrap(), Versioning::Never);
    s3.put_versioning(bucket, true).unwrap();
    assert_eq!(s3.get_versioning(bucket).unwrap(), Versioning::Enabled);
    s3.put_versioning(bucket, false).unwrap();
    assert_eq!(s3.get_versioning(bucket).unwrap(), Versioning::Suspended);

    // Lifecycle: none, the seed's rule, changed, removed.
    assert_eq!(s3.get_lifecycle(bucket).unwrap(), None);
    s3.put_lifecycle(bucket, &seed_lifecycle()).unwrap();
    assert_eq!(s3.get_lifecycle(bucket).unwrap(), Some(seed_lifecycle()));
    let longer = Lifecycle {
        expiration_days: Some(90),
        abort_incomplete_multipart_days: None,
        ..seed_lifecycle()
    };
    // The rule provision writes now: nothing current expires; old versions and expired
    // delete markers go, and unfinished uploads are aborted. moto keeps it as sent.
    let retention = Lifecycle {
        id: "ttl".into(),
        enabled: true,
        expiration_days: None,
        expired_object_delete_marker: true,
        noncurrent_days: Some(7),
        abort_incomplete_multipart_days: Some(1),
    };
    s3.put_lifecycle(bucket, &retention).unwrap();
    assert_eq!(s3.get_lifecycle(bucket).unwrap(), Some(retention));
    s3.put_lifecycle(bucket, &longer).unwrap();
    assert_eq!(
        s3.get_lifecycle_rules(bucket).unwrap(),
        Some(vec![longer.clone()])
    );
    s3.delete_lifecycle(bucket).unwrap();
    assert_eq!(s3.get_lifecycle(bucket).unwrap(), None);
    s3.delete_lifecycle(bucket).unwrap();
    s3.put_lifecycle(bucket, &seed_lifecycle()).unwrap();

    // Policy: none, the seed's anonymous reads (equivalent when read back), removed.
    assert_eq!(s3.get_policy(bucket).unwrap(), None);
    let policy = anonymous_read_policy(bucket);
    s3.put_policy(bucket, &policy).unwrap();
    let stored = s3.get_policy(bucket).unwrap().expect("a policy after put");
    assert!(policy_equivalent(&policy, &stored), "{stored}");
    assert!(!policy_equivalent(&anonymous_read_policy("other"), &stored));
    s3.delete_policy(bucket).unwrap();
    assert_eq!(s3.get_policy(bucket).unwrap(), None);

    // Objects: nix-cache-info with its content type; a missing key is None.
    assert_eq!(s3.get_object(bucket, "nix-cache-info").unwrap(), None);
    s3.put_object(
        bucket,
        "nix-cache-info",
        CACHE_INFO,
        "text/x-nix-cache-info",
    )
    .unwrap();
    let object = s3.get_object(bucket, "nix-cache-info").unwrap().unwrap();
    assert_eq!(object.body, CACHE_INFO);
    assert_eq!(
        object.content_type.as_deref(),
        Some("text/x-nix-cache-info")
    );
    assert_eq!(s3.count_objects(bucket).unwrap(), 1);

    // Several listing pages (page size 2). moto 5 miscomputes signatures with `/` in a query
    // value and `+` in a key (boto3 fails the same way there), so keys here have neither;
    // s3s-fs checks such keys below.
    for i in 0..4 {
        let key = format!("{i}-narinfo");
        s3.put_object(bucket, &key, b"nar", "application/x-nix-nar")
            .unwrap();
    }
    assert_eq!(s3.count_objects(bucket).unwrap(), 5);
    assert_eq!(s3.count_object_versions(bucket).unwrap(), 5);

    // Deleting a non-empty bucket is refused, clearly.
    let err = s3.delete_bucket(bucket).unwrap_err();
    assert!(err.is_bucket_not_empty(), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("DeleteBucket s3://nix-store") && text.contains("BucketNotEmpty"),
        "{text}"
    );

    // In a versioned bucket a deleted object leaves a delete marker behind.
    s3.put_versioning(bucket, true).unwrap();
    s3.delete_object(bucket, "0-narinfo").unwrap();
    assert_eq!(s3.count_objects(bucket).unwrap(), 4);
    assert_eq!(s3.count_object_versions(bucket).unwrap(), 6);

    // Every version can be listed and deleted for good.
    let versions = s3.list_object_versions(bucket, Some("0-")).unwrap();
    assert_eq!(versions.len(), 2, "{versions:?}");
    assert_eq!(versions.iter().filter(|v| v.delete_marker).count(), 1);
    assert!(versions.iter().all(|v| v.key == "0-narinfo"));
    for v in &versions {
        s3.delete_object_version(bucket, &v.key, &v.version_id)
            .unwrap();
    }
    assert_eq!(s3.list_object_versions(bucket, Some("0-")).unwrap(), vec![]);
    assert_eq!(s3.count_object_versions(bucket).unwrap(), 4);

    // A bucket emptied of objects can be deleted.
    let scratch = "nix-scratch";
    s3.create_bucket(scratch).unwrap();
    s3.put_object(scratch, "a", b"1", "text/plain").unwrap();
    assert!(s3.delete_bucket(scratch).unwrap_err().is_bucket_not_empty());
    s3.delete_object(scratch, "a").unwrap();
    assert_eq!(s3.count_objects(scratch).unwrap(), 0);
    s3.delete_bucket(scratch).unwrap();
    assert_eq!(s3.head_bucket(scratch).unwrap(), BucketStatus::Missing);

    // A wrong secret is rejected, and the error says which call and which resource.
    let wrong = client(&moto.url(), &key_id, "not-the-secret-0123456789");
    let err = wrong.get_versioning(bucket).unwrap_err();
    match &err {
        ApiError::Status {
            provider,
            call,
            resource,
            status,
            codes,
            ..
        } => {
            assert_eq!(*provider, "Spaces");
            assert_eq!(call, "GetBucketVersioning");
            assert_eq!(resource, "s3://nix-store");
            assert_eq!(*status, 403);
            assert_eq!(codes, &["SignatureDoesNotMatch"]);
        }
        other => panic!("expected an HTTP error, got {other:?}"),
    }
    assert!(err.is_credentials());
    let text = err.to_string();
    assert!(
        text.starts_with(
            "Spaces answered HTTP 403 SignatureDoesNotMatch to GetBucketVersioning s3://nix-store"
        ),
        "{text}"
    );
    assert!(!text.contains(&secret) && !format!("{err:?}").contains(&secret));
    let err = wrong
        .put_object(bucket, "nix-cache-info", b"x", "text/plain")
        .unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err}");
    // ...and the object is untouched.
    assert_eq!(
        s3.get_object(bucket, "nix-cache-info")
            .unwrap()
            .unwrap()
            .body,
        CACHE_INFO
    );

    // HEAD has no error body: the client asks again to tell refused keys from a foreign bucket.
    let err = wrong.head_bucket(bucket).unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err}");
    assert!(
        err.to_string().contains("to HeadBucket s3://nix-store"),
        "{err}"
    );

    // An unknown access key is rejected too.
    let unknown = client(&moto.url(), "AKIAUNKNOWNKEY000000", &secret);
    let err = unknown.get_policy(bucket).unwrap_err();
    assert_eq!(err.code(), Some("InvalidAccessKeyId"), "{err}");
    assert!(err.is_credentials());

    // The client's Debug never shows the secret.
    assert!(!format!("{s3:?}").contains(&secret));
}

// ---------------------------------------------------------------------------------------------
// s3s-fs: objects, SigV4 verified
// ---------------------------------------------------------------------------------------------

const S3S_ACCESS_KEY: &str = "AKIAS3SFSTEST0000000";
const S3S_SECRET: &str = "s3s-fs-test-secret-key-0123456789abcdef";

fn start_s3s_fs() -> ServerGuard {
    let bin = require_binary(
        "s3s-fs",
        "run `cargo install s3s-fs --version 0.14.1 --features binary --locked` (scripts/install.sh does)",
    );
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    std::fs::create_dir(&root).unwrap();
    let mut command = Command::new(bin);
    command
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--access-key", S3S_ACCESS_KEY, "--secret-key", S3S_SECRET])
        .arg(&root);
    spawn(command, "s3s-fs", port, dir)
}

#[test]
fn s3s_fs_objects_round_trip_and_bucket_settings_not_implemented() {
    let server = start_s3s_fs();
    let s3 = client(&server.url(), S3S_ACCESS_KEY, S3S_SECRET).with_page_size(2);
    let bucket = "nix-store";

    assert_eq!(s3.head_bucket(bucket).unwrap(), BucketStatus::Missing);
    s3.create_bucket(bucket).unwrap();
    assert_eq!(s3.head_bucket(bucket).unwrap(), BucketStatus::Owned);
    assert_eq!(s3.count_objects(bucket).unwrap(), 0);

    assert_eq!(s3.get_object(bucket, "nix-cache-info").unwrap(), None);
    s3.put_object(
        bucket,
        "nix-cache-info",
        CACHE_INFO,
        "text/x-nix-cache-info",
    )
    .unwrap();
    let object = s3.get_object(bucket, "nix-cache-info").unwrap().unwrap();
    assert_eq!(object.body, CACHE_INFO);
    assert!(
        object.content_type.is_some(),
        "s3s-fs answers a content type"
    );
    // Keys are signed as sent, special characters included.
    for i in 0..4 {
        s3.put_object(
            bucket,
            &format!("nar/{i} x+y=z.nar"),
            &[i; 100],
            "application/x-nix-nar",
        )
        .unwrap();
    }
    assert_eq!(s3.count_objects(bucket).unwrap(), 5);
    let nar = s3.get_object(bucket, "nar/2 x+y=z.nar").unwrap().unwrap();
    assert_eq!(nar.body, vec![2u8; 100]);

    for i in 0..4 {
        s3.delete_object(bucket, &format!("nar/{i} x+y=z.nar"))
            .unwrap();
    }
    s3.delete_object(bucket, "nix-cache-info").unwrap();
    assert_eq!(s3.get_object(bucket, "nix-cache-info").unwrap(), None);
    assert_eq!(s3.count_objects(bucket).unwrap(), 0);

    // Bucket settings: s3s-fs answers 501, and the error says so and names the call.
    let checks: Vec<(&str, Result<(), ApiError>)> = vec![
        ("GetBucketVersioning", s3.get_versioning(bucket).map(drop)),
        ("PutBucketVersioning", s3.put_versioning(bucket, true)),
        (
            "GetBucketLifecycleConfiguration",
            s3.get_lifecycle(bucket).map(drop),
        ),
        (
            "PutBucketLifecycleConfiguration",
            s3.put_lifecycle(bucket, &seed_lifecycle()),
        ),
        ("GetBucketPolicy", s3.get_policy(bucket).map(drop)),
        (
            "PutBucketPolicy",
            s3.put_policy(bucket, &anonymous_read_policy(bucket)),
        ),
    ];
    for (op, result) in checks {
        let err = result.expect_err(op);
        assert!(err.is_not_implemented(), "{op}: {err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "Spaces answered HTTP 501 NotImplemented to {op} s3://nix-store"
            )),
            "{text}"
        );
        assert!(text.contains("does not implement"), "{text}");
    }

    // s3s-fs verifies signatures: a wrong secret is refused.
    let wrong = client(&server.url(), S3S_ACCESS_KEY, "wrong-secret-0123456789");
    let err = wrong
        .put_object(bucket, "nix-cache-info", b"x", "text/plain")
        .unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"), "{err}");
    assert!(err
        .to_string()
        .contains("PutObject s3://nix-store/nix-cache-info"));
    let err = wrong.head_bucket(bucket).unwrap_err();
    assert!(err.is_credentials(), "{err}");
    assert_eq!(s3.get_object(bucket, "nix-cache-info").unwrap(), None);

    s3.delete_bucket(bucket).unwrap();
    assert_eq!(s3.head_bucket(bucket).unwrap(), BucketStatus::Missing);
}

// ---------------------------------------------------------------------------------------------
// Retries, against a scripted peer
// ---------------------------------------------------------------------------------------------

/// Answers each connection with the next scripted response (then `200 OK`), counting requests.
struct ScriptedPeer {
    port: u16,
    requests: Arc<AtomicUsize>,
}

impl ScriptedPeer {
    fn start(script: Vec<&'static str>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(AtomicUsize::new(0));
        let counter = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { break };
                let n = counter.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut content_length = 0usize;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        content_length = v.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; content_length];
                let _ = reader.read_exact(&mut body);
                let answer = script
                    .get(n)
                    .copied()
                    .unwrap_or("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        ScriptedPeer { port, requests }
    }
}

#[test]
fn retries_5xx_and_429_then_succeeds_but_not_501() {
    let peer = ScriptedPeer::start(vec![
        "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        "HTTP/1.1 429 Too Many Requests\r\nRetry-After: 0\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    ]);
    let s3 = SpacesClient::new(
        &format!("http://127.0.0.1:{}", peer.port),
        REGION,
        Credentials::new("AKIDEXAMPLE", "secret"),
    )
    .unwrap()
    .with_retry(Duration::from_millis(5), 4);
    assert_eq!(s3.head_bucket("b").unwrap(), BucketStatus::Owned);
    assert_eq!(peer.requests.load(Ordering::SeqCst), 3);

    let body = "<Error><Code>NotImplemented</Code><Message>A header you provided implies functionality that is not implemented</Message></Error>";
    let answer: &'static str = Box::leak(
        format!(
            "HTTP/1.1 501 Not Implemented\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_boxed_str(),
    );
    let peer = ScriptedPeer::start(vec![answer]);
    let s3 = SpacesClient::new(
        &format!("http://127.0.0.1:{}", peer.port),
        REGION,
        Credentials::new("AKIDEXAMPLE", "secret"),
    )
    .unwrap()
    .with_retry(Duration::from_millis(5), 4);
    let err = s3.get_versioning("b").unwrap_err();
    assert_eq!(err.code(), Some("NotImplemented"));
    assert_eq!(
        peer.requests.load(Ordering::SeqCst),
        1,
        "501 is not retried"
    );
}

#[test]
fn retries_stop_and_a_refused_connection_names_the_call() {
    let port = free_port(); // nobody listens there
    let s3 = SpacesClient::new(
        &format!("http://127.0.0.1:{port}"),
        REGION,
        Credentials::new("AKIDEXAMPLE", "secret"),
    )
    .unwrap()
    .with_retry(Duration::from_millis(5), 3);
    let err = s3.get_policy("nix-store").unwrap_err();
    match &err {
        ApiError::Transport {
            provider,
            call,
            resource,
            attempts,
            ..
        } => {
            assert_eq!(*provider, "Spaces");
            assert_eq!(call, "GetBucketPolicy");
            assert_eq!(resource, "s3://nix-store");
            assert_eq!(*attempts, 3);
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    assert!(err
        .to_string()
        .starts_with("Spaces: GetBucketPolicy s3://nix-store: no answer"));
}
