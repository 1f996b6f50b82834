//! Faults in the S3 steps of `provision apply`, end to end: the binary talks to `moto_server`
//! (auth mode) through a small HTTP/1.1 proxy on 127.0.0.1 that forwards every byte
//! unchanged (the SigV4 signature covers the `Host` the client sent to the proxy, and moto
//! checks it against the same header) but, for the first N requests matching a rule, answers
//! by itself: a 500 `InternalError`, a 503 `SlowDown`, a 200 with a garbage body, or the real
//! answer replaced by a 500 after moto has made the change ("died half way").
//!
//! Each case runs `apply` with the fault (it may finish thanks to retries, or stop naming the
//! step and the resource), then `apply` without it (exit 0), then `plan` (exit 0), and reads
//! moto's state directly, without the proxy. DigitalOcean and Cloudflare are the in-process
//! fakes (`fakes`). Every run's output is scanned for the secrets in play.

mod fakes;
mod moto;

use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fakes::{FakeCloudflare, FakeDigitalOcean};
use moto::{start_moto, Moto};
use provision::api::spaces::{BucketStatus, SpacesClient, Versioning};

const DO_TOKEN: &str = "dop_v1_7a1c9e3f51b24d68a0c1e2f3b4d5c6a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d";
const CF_TOKEN: &str = "cf-token-Hk2nW8rT7yU1iO5pA9sD2fG6hJ0kL4xQ";
const HOSTNAME: &str = "cache.example.com";
const ZONE: &str = "example.com";
const REGION: &str = "fra1";
/// Attempts per call in the runs under test: a fault answering this many times in a row
/// outlasts the retries.
const ATTEMPTS: usize = 2;

// ---------------------------------------------------------------------------------------------
// The fault-injecting proxy
// ---------------------------------------------------------------------------------------------

/// What the proxy does to a matching request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum S3Fault {
    /// 500 `InternalError`, moto never sees the request.
    Internal,
    /// 503 `SlowDown`, moto never sees the request.
    SlowDown,
    /// 200 with a body that is neither XML nor JSON nor the object.
    Garbage,
    /// Forwarded (moto makes the change), then 500 `InternalError` instead of moto's answer.
    DiedHalfWay,
}

impl S3Fault {
    /// Whether provision's S3 client retries this answer.
    fn retried(self) -> bool {
        self != S3Fault::Garbage
    }

    fn answer(self) -> Vec<u8> {
        let (status, reason, content_type, body) = match self {
            S3Fault::Internal | S3Fault::DiedHalfWay => (
                500,
                "Internal Server Error",
                "application/xml",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>InternalError</Code><Message>We encountered an internal error. Please try again.</Message><RequestId>proxy-fault</RequestId></Error>",
            ),
            S3Fault::SlowDown => (
                503,
                "Service Unavailable",
                "application/xml",
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message><RequestId>proxy-fault</RequestId></Error>",
            ),
            S3Fault::Garbage => (
                200,
                "OK",
                "application/octet-stream",
                "\u{1}\u{2}}}{{ not what was asked for \u{7f}",
            ),
        };
        format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    }
}

/// Which request targets a rule matches.
#[derive(Clone, Debug)]
enum Target {
    /// The target contains this (`?lifecycle`, `/nix-cache-info`).
    Contains(String),
    /// The target is exactly this (`/bucket`: CreateBucket).
    Exact(String),
}

impl Target {
    fn matches(&self, target: &str) -> bool {
        match self {
            Target::Contains(s) => target.contains(s.as_str()),
            Target::Exact(s) => target == s,
        }
    }
}

#[derive(Clone, Debug)]
struct Rule {
    method: &'static str,
    target: Target,
    fault: S3Fault,
    /// Matching requests to fault; later ones are forwarded.
    times: usize,
}

#[derive(Default)]
struct ProxyState {
    rule: Option<Rule>,
    /// Matching requests answered by the fault.
    fired: usize,
    /// Every request line seen, in order.
    seen: Vec<String>,
}

struct Proxy {
    port: u16,
    state: Arc<Mutex<ProxyState>>,
    stop: Arc<AtomicBool>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

enum Action {
    Forward,
    Answer(Vec<u8>),
    ForwardThenAnswer(Vec<u8>),
}

impl Proxy {
    fn start(upstream: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(ProxyState::default()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let state = Arc::clone(&state);
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = Arc::clone(&state);
                    std::thread::spawn(move || {
                        let _ = serve(stream, upstream, &state);
                    });
                }
            })
        };
        Proxy {
            port,
            state,
            stop,
            accept: Some(accept),
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn set_rule(&self, rule: Option<Rule>) {
        let mut state = self.state.lock().unwrap();
        state.rule = rule;
        state.fired = 0;
    }

    fn fired(&self) -> usize {
        self.state.lock().unwrap().fired
    }

    fn seen(&self) -> Vec<String> {
        self.state.lock().unwrap().seen.clone()
    }
}

/// One HTTP/1.1 message read off a stream, as the bytes that came in.
struct Message {
    raw: Vec<u8>,
    start_line: String,
    close: bool,
}

/// Reads one message: head, then a body by `Content-Length` or chunked encoding, or (for an
/// answer without either) up to the end of the stream. `None` at a clean end of stream.
fn read_message(
    reader: &mut impl BufRead,
    is_request: bool,
    request_method: &str,
) -> std::io::Result<Option<Message>> {
    let mut raw = Vec::new();
    let mut start_line = String::new();
    let mut content_length: Option<usize> = None;
    let mut chunked = false;
    let mut close = false;
    loop {
        let mut line = Vec::new();
        if reader.read_until(b'\n', &mut line)? == 0 {
            if raw.is_empty() {
                return Ok(None);
            }
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the stream ended inside a message head",
            ));
        }
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        if start_line.is_empty() {
            start_line = text;
            continue;
        }
        if text.is_empty() {
            break;
        }
        if let Some((name, value)) = text.split_once(':') {
            let value = value.trim().to_ascii_lowercase();
            match name.trim().to_ascii_lowercase().as_str() {
                "content-length" => content_length = value.parse().ok(),
                "transfer-encoding" => chunked = value.contains("chunked"),
                "connection" => close = value.contains("close"),
                _ => {}
            }
        }
    }
    let status = if is_request {
        0
    } else {
        start_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse::<u16>().ok())
            .unwrap_or(0)
    };
    let bodiless =
        !is_request && (request_method == "HEAD" || status == 204 || status == 304 || status < 200);
    if bodiless {
    } else if chunked {
        loop {
            let mut size_line = Vec::new();
            reader.read_until(b'\n', &mut size_line)?;
            raw.extend_from_slice(&size_line);
            let size_text = String::from_utf8_lossy(&size_line);
            let size_hex = size_text.trim().split(';').next().unwrap_or("");
            let size = usize::from_str_radix(size_hex, 16).map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::InvalidData, "bad chunk size")
            })?;
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    let mut line = Vec::new();
                    reader.read_until(b'\n', &mut line)?;
                    raw.extend_from_slice(&line);
                    if line == b"\r\n" || line == b"\n" || line.is_empty() {
                        break;
                    }
                }
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            raw.extend_from_slice(&chunk);
        }
    } else if let Some(n) = content_length {
        let mut body = vec![0; n];
        reader.read_exact(&mut body)?;
        raw.extend_from_slice(&body);
    } else if !is_request {
        reader.read_to_end(&mut raw)?;
        close = true;
    }
    Ok(Some(Message {
        raw,
        start_line,
        close,
    }))
}

/// Sends one request to moto on a fresh connection and returns its answer.
fn forward(upstream: u16, request: &Message, method: &str) -> std::io::Result<Message> {
    let mut moto = TcpStream::connect(("127.0.0.1", upstream))?;
    moto.set_read_timeout(Some(Duration::from_secs(30)))?;
    moto.write_all(&request.raw)?;
    let mut reader = BufReader::new(moto);
    read_message(&mut reader, false, method)?.ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "moto closed without an answer",
        )
    })
}

/// Serves one client connection, request after request (keep-alive).
fn serve(client: TcpStream, upstream: u16, state: &Mutex<ProxyState>) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut writer = client.try_clone()?;
    let mut reader = BufReader::new(client);
    while let Some(request) = read_message(&mut reader, true, "")? {
        let mut parts = request.start_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let action = {
            let mut state = state.lock().unwrap();
            state.seen.push(format!("{method} {target}"));
            let hit = match &state.rule {
                Some(rule)
                    if rule.method == method
                        && rule.target.matches(&target)
                        && state.fired < rule.times =>
                {
                    Some(rule.fault)
                }
                _ => None,
            };
            match hit {
                None => Action::Forward,
                Some(fault) => {
                    state.fired += 1;
                    if fault == S3Fault::DiedHalfWay {
                        Action::ForwardThenAnswer(fault.answer())
                    } else {
                        Action::Answer(fault.answer())
                    }
                }
            }
        };
        let close = match action {
            Action::Forward => {
                let answer = forward(upstream, &request, &method)?;
                writer.write_all(&answer.raw)?;
                answer.close
            }
            Action::Answer(bytes) => {
                writer.write_all(&bytes)?;
                false
            }
            Action::ForwardThenAnswer(bytes) => {
                forward(upstream, &request, &method)?;
                writer.write_all(&bytes)?;
                false
            }
        };
        writer.flush()?;
        if close || request.close {
            break;
        }
    }
    let _ = writer.shutdown(Shutdown::Both);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// One case: fakes + a working directory, the binary pointed at the proxy
// ---------------------------------------------------------------------------------------------

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

struct Case<'a> {
    moto: &'a Moto,
    proxy: &'a Proxy,
    bucket: String,
    digitalocean: FakeDigitalOcean,
    cloudflare: FakeCloudflare,
    dir: tempfile::TempDir,
    transcript: Vec<String>,
}

impl<'a> Case<'a> {
    fn new(moto: &'a Moto, proxy: &'a Proxy, bucket: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("provision.toml"),
            format!(
                "hostname = \"{HOSTNAME}\"\nzone = \"{ZONE}\"\nregion = \"{REGION}\"\nbucket = \"{bucket}\"\n"
            ),
        )
        .unwrap();
        Case {
            moto,
            proxy,
            bucket: bucket.to_owned(),
            digitalocean: FakeDigitalOcean::start(DO_TOKEN),
            cloudflare: FakeCloudflare::start(CF_TOKEN, &[ZONE]),
            dir,
            transcript: Vec::new(),
        }
    }

    fn run(&mut self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_provision"))
            .current_dir(self.dir.path())
            .env_clear()
            .env("DIGITALOCEAN_TOKEN", DO_TOKEN)
            .env("CLOUDFLARE_API_TOKEN", CF_TOKEN)
            .env("SPACES_ACCESS_KEY_ID", &self.moto.key_id)
            .env("SPACES_SECRET_ACCESS_KEY", &self.moto.secret)
            .env("DIGITALOCEAN_API_URL", self.digitalocean.url())
            .env("CLOUDFLARE_API_URL", self.cloudflare.url())
            .env("SPACES_ENDPOINT", self.proxy.url())
            .env("PROVISION_RETRY_ATTEMPTS", ATTEMPTS.to_string())
            .env("PROVISION_RETRY_BASE_MS", "5")
            .env("PROVISION_RETRY_MAX_MS", "50")
            .env("PROVISION_HTTP_TIMEOUT_MS", "5000")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run provision");
        let run = Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        };
        self.transcript
            .push(format!("{}\n{}", run.stdout, run.stderr));
        run
    }

    /// moto holds the bucket as provision wants it, read without the proxy; the fakes hold
    /// one of each of their resources.
    fn assert_converged(&self, what: &str) {
        let s3 = self.moto.s3();
        let b = self.bucket.as_str();
        assert_eq!(s3.head_bucket(b).unwrap(), BucketStatus::Owned, "{what}");
        assert_eq!(s3.get_versioning(b).unwrap(), Versioning::Enabled, "{what}");
        let rules = s3.get_lifecycle_rules(b).unwrap().unwrap();
        assert_eq!(rules.len(), 1, "{what}: lifecycle rules {rules:?}");
        let rule = &rules[0];
        assert_eq!(
            (
                rule.enabled,
                rule.expiration_days,
                rule.expired_object_delete_marker,
                rule.noncurrent_days,
                rule.abort_incomplete_multipart_days
            ),
            (true, None, true, Some(7), Some(1)),
            "{what}"
        );
        let policy = s3.get_policy(b).unwrap().expect("a bucket policy");
        assert!(
            provision::api::spaces::policy_equivalent(
                &policy,
                &provision::api::spaces::anonymous_read_policy(b)
            ),
            "{what}: policy {policy}"
        );
        let info = s3.get_object(b, "nix-cache-info").unwrap().unwrap();
        assert_eq!(
            info.body, b"StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n",
            "{what}"
        );
        assert_eq!(
            info.content_type.as_deref(),
            Some("text/x-nix-cache-info"),
            "{what}"
        );
        assert_eq!(self.digitalocean.certificates().len(), 1, "{what}");
        assert_eq!(self.digitalocean.cdn_endpoints().len(), 1, "{what}");
        assert_eq!(self.digitalocean.spaces_keys().len(), 1, "{what}");
        assert_eq!(self.cloudflare.origin_certificates().len(), 1, "{what}");
        assert_eq!(self.cloudflare.dns_records().len(), 1, "{what}");
    }

    fn assert_no_leaks(&self) {
        let mut secrets = vec![
            DO_TOKEN.to_owned(),
            CF_TOKEN.to_owned(),
            self.moto.secret.clone(),
        ];
        if let Ok(text) = std::fs::read_to_string(self.dir.path().join("worker-secrets.json")) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap();
            secrets.push(v["SPACES_SECRET_ACCESS_KEY"].as_str().unwrap().to_owned());
        }
        for (i, text) in self.transcript.iter().enumerate() {
            for s in &secrets {
                assert!(!text.contains(s.as_str()), "run {i} printed a secret");
            }
            assert!(
                !text.contains("PRIVATE KEY"),
                "run {i} printed a private key"
            );
        }
    }
}

/// Where a rule's requests go, for a given bucket.
#[derive(Clone, Copy, Debug)]
enum Place {
    /// The bucket itself, no query: CreateBucket when the method is PUT.
    Bucket,
    /// Any target containing this.
    Contains(&'static str),
}

impl Place {
    fn target(self, bucket: &str) -> Target {
        match self {
            Place::Bucket => Target::Exact(format!("/{bucket}")),
            Place::Contains(s) => Target::Contains(s.to_owned()),
        }
    }
}

/// One S3 step and how its requests look on the wire.
struct Step {
    name: &'static str,
    /// The request faulted when provision writes the setting.
    write: (&'static str, Place),
    /// The request faulted when provision reads it (observe), if it has a body to garble.
    read: Option<(&'static str, Place)>,
    /// What an apply stopped by the write fault says, `{b}` standing for the bucket.
    apply_context: &'static str,
    /// What a run stopped by the read fault says.
    observe_context: &'static str,
    /// Whether moto holds what the write makes (read without the proxy).
    made: fn(&SpacesClient, &str) -> bool,
}

/// Every fault kind against one step, each case on its own bucket.
fn step_faults_converge(step: &Step, prefix: &str) {
    let started = Instant::now();
    let moto = start_moto();
    let proxy = Proxy::start(moto.port);
    let mut report = Vec::new();
    let mut cases: Vec<(S3Fault, usize, bool)> = Vec::new();
    for fault in [S3Fault::Internal, S3Fault::SlowDown, S3Fault::DiedHalfWay] {
        // Once (the retry absorbs it), then as often as the client tries (the apply stops).
        cases.push((fault, 1, false));
        cases.push((fault, ATTEMPTS, false));
    }
    if step.read.is_some() {
        cases.push((S3Fault::Garbage, 1, true));
    }
    for (n, &(fault, times, on_read)) in cases.iter().enumerate() {
        let case_started = Instant::now();
        let bucket = format!("{prefix}-{n}");
        let mut case = Case::new(&moto, &proxy, &bucket);
        let (method, target) = if on_read {
            // A read is only made of an existing bucket: make it bare, outside provision.
            moto.s3().create_bucket(&bucket).unwrap();
            let (method, place) = step.read.unwrap();
            (method, place.target(&bucket))
        } else {
            let (method, place) = step.write;
            (method, place.target(&bucket))
        };
        let what = format!("{} {fault:?} x{times} on {method} {target:?}", step.name);
        proxy.set_rule(Some(Rule {
            method,
            target: target.clone(),
            fault,
            times,
        }));

        let first = case.run(&["apply"]);
        let fired = proxy.fired();
        proxy.set_rule(None);
        assert!(
            fired > 0,
            "{what}: the fault never fired: {:#?}",
            proxy.seen()
        );
        if fault.retried() {
            assert_eq!(fired, times, "{what}: every faulted answer was retried");
        }
        match first.code {
            0 => {
                // Absorbed within the apply: a retry, or a fresh read of what was made.
                assert!(
                    times < ATTEMPTS || !fault.retried(),
                    "{what}: {ATTEMPTS} faulted attempts cannot succeed: {first:?}"
                );
                case.assert_converged(&what);
            }
            1 => {
                let context = if on_read {
                    step.observe_context
                } else {
                    step.apply_context
                }
                .replace("{b}", &bucket);
                let words = match fault {
                    S3Fault::Internal | S3Fault::DiedHalfWay => "HTTP 500 InternalError",
                    S3Fault::SlowDown => "HTTP 503 SlowDown",
                    S3Fault::Garbage => "unexpected answer",
                };
                assert!(
                    first.stderr.contains("error: ")
                        && first.stderr.contains(&context)
                        && first.stderr.contains(words),
                    "{what}: the error names the step ({context}) and the answer ({words}): {first:?}"
                );
                if fault.retried() {
                    assert_eq!(times, ATTEMPTS, "{what}: one fault is retried: {first:?}");
                    // Died half way: moto made it though the client saw 500s; otherwise moto
                    // never saw the write.
                    assert_eq!(
                        (step.made)(&moto.s3(), &bucket),
                        fault == S3Fault::DiedHalfWay,
                        "{what}: made by the stopped apply"
                    );
                }
            }
            _ => panic!("{what}: first apply: {first:?}"),
        }

        let second = case.run(&["apply"]);
        assert_eq!(second.code, 0, "{what}: second apply: {second:?}");
        let plan = case.run(&["plan"]);
        assert_eq!(
            plan.code, 0,
            "{what}: plan after the second apply: {plan:?}"
        );
        case.assert_converged(&what);
        assert!(
            case.digitalocean.violations().is_empty(),
            "{what}: {:#?}",
            case.digitalocean.violations()
        );
        assert!(
            case.cloudflare.violations().is_empty(),
            "{what}: {:#?}",
            case.cloudflare.violations()
        );
        case.assert_no_leaks();
        report.push(format!(
            "{:<12} {:<12} x{times} {method:<4} {:<16} fired {fired}, first apply exit {}, {} ms",
            step.name,
            format!("{fault:?}"),
            match &target {
                Target::Contains(s) => s.clone(),
                Target::Exact(s) => format!("={s}"),
            },
            first.code,
            case_started.elapsed().as_millis()
        ));
    }
    println!(
        "{}\n{} cases in {} ms",
        report.join("\n"),
        cases.len(),
        started.elapsed().as_millis()
    );
}

#[test]
fn create_bucket_faults_converge() {
    step_faults_converge(
        &Step {
            name: "bucket",
            write: ("PUT", Place::Bucket),
            read: None,
            apply_context: "apply: bucket {b}: CreateBucket",
            observe_context: "observe: bucket {b}: HeadBucket",
            made: |s3, b| s3.head_bucket(b).unwrap() == BucketStatus::Owned,
        },
        "s3f-bucket",
    );
}

#[test]
fn lifecycle_faults_converge() {
    step_faults_converge(
        &Step {
            name: "lifecycle",
            write: ("PUT", Place::Contains("?lifecycle")),
            read: Some(("GET", Place::Contains("?lifecycle"))),
            apply_context: "apply: bucket {b}: lifecycle rule: PutBucketLifecycleConfiguration",
            observe_context: "observe: bucket {b}: GetBucketLifecycleConfiguration",
            made: |s3, b| s3.get_lifecycle_rules(b).unwrap().is_some(),
        },
        "s3f-lifecycle",
    );
}

#[test]
fn versioning_faults_converge() {
    step_faults_converge(
        &Step {
            name: "versioning",
            write: ("PUT", Place::Contains("?versioning")),
            read: Some(("GET", Place::Contains("?versioning"))),
            apply_context: "apply: bucket {b}: versioning: PutBucketVersioning",
            observe_context: "observe: bucket {b}: GetBucketVersioning",
            made: |s3, b| s3.get_versioning(b).unwrap() == Versioning::Enabled,
        },
        "s3f-versioning",
    );
}

#[test]
fn policy_faults_converge() {
    step_faults_converge(
        &Step {
            name: "policy",
            write: ("PUT", Place::Contains("?policy")),
            read: Some(("GET", Place::Contains("?policy"))),
            apply_context: "apply: bucket {b}: policy: PutBucketPolicy",
            observe_context: "observe: bucket {b}: GetBucketPolicy",
            made: |s3, b| s3.get_policy(b).unwrap().is_some(),
        },
        "s3f-policy",
    );
}

#[test]
fn cache_info_faults_converge() {
    step_faults_converge(
        &Step {
            name: "cache-info",
            write: ("PUT", Place::Contains("/nix-cache-info")),
            read: Some(("GET", Place::Contains("/nix-cache-info"))),
            apply_context: "apply: s3://{b}/nix-cache-info: PutObject",
            observe_context: "observe: s3://{b}/nix-cache-info: GetObject",
            made: |s3, b| s3.get_object(b, "nix-cache-info").unwrap().is_some(),
        },
        "s3f-cacheinfo",
    );
}
