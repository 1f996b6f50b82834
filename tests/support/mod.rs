//! The end-to-end harness: real processes on 127.0.0.1, each owned by a guard that kills it
//! by process id when dropped (also when a test panics).
//!
//! - [`seed`]: a real signed binary cache made by the Nix client (`scripts/seed-cache.sh`),
//!   once per test binary.
//! - [`S3Origin`]: `s3s-fs` serving that cache as a bucket and verifying SigV4, behind a
//!   [`CountingProxy`] that records every request the origin receives (method, target,
//!   headers), so tests can prove that an edge-cache hit or a refused path reaches no origin.
//! - [`ScriptedOrigin`]: an origin that answers with scripted raw bytes (5xx, HTML, a body
//!   without a length, a redirect, not HTTP at all), for what the Worker makes of garbage.
//! - [`Worker`]: the built Worker under workerd, through `scripts/run-worker.mjs`.
//! - [`NixEnv`]: the Nix client as root without a daemon, with a chroot store in a temp dir.
//! - [`http`]: a raw HTTP/1.1 client that sends request targets exactly as given (no dot
//!   segment or percent-encoding normalisation), for HEAD, Range and hostile paths.
//! - [`Checks`]: runs many named checks against one stack and reports every failure at once.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

/// The repository root (where Cargo.toml, scripts/ and build/ are).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A directory for this test binary's files, under cargo's target tmp dir.
pub fn scratch_root() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let stem = exe.file_stem().and_then(|s| s.to_str()).unwrap_or("tests");
    // Cargo names test binaries `<name>-<hash>`; keep one directory per test file.
    let stem = stem
        .rsplit_once('-')
        .map_or(stem, |(name, _)| name)
        .to_string();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("e2e-{stem}"));
    fs::create_dir_all(&dir).expect("create scratch root");
    dir
}

/// A fresh temporary directory under [`scratch_root`], removed on drop.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(scratch_root())
        .expect("create temp dir")
}

/// A tool installed by `scripts/install.sh` (in `~/.cargo/bin` or on PATH).
pub fn tool(name: &str) -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")));
    if let Some(home) = home {
        let candidate = home.join("bin").join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    PathBuf::from(name)
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
pub fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local_addr").port()
}

/// Random hex from the kernel, for throwaway local credentials.
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process that is killed by its process id when the guard drops. Processes started
/// with `group = true` lead their own process group, and the whole group is killed (node and
/// the workerd it starts).
#[derive(Debug)]
pub struct ProcessGuard {
    name: String,
    child: Child,
    group: bool,
    /// Held open so that a child started with `--exit-on-stdin-close` sees EOF when we go.
    stdin: Option<ChildStdin>,
    /// Where the child's stderr goes, for diagnostics.
    pub log: PathBuf,
}

impl ProcessGuard {
    /// Starts `cmd` with stderr appended to `log`. Stdout is left as configured by the caller.
    pub fn spawn(name: &str, mut cmd: Command, log: &Path, group: bool) -> ProcessGuard {
        let err = File::options()
            .create(true)
            .append(true)
            .open(log)
            .expect("open log file");
        cmd.stderr(Stdio::from(err));
        if group {
            cmd.process_group(0);
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e} (run scripts/install.sh)"));
        let stdin = child.stdin.take();
        ProcessGuard {
            name: name.to_string(),
            child,
            group,
            stdin,
            log: log.to_path_buf(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The tail of the process's log, for failure messages.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let start = text.len().saturating_sub(4000);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        format!(
            "--- {} log ({}) ---\n{}",
            self.name,
            self.log.display(),
            &text[start..]
        )
    }

    /// Kills the process (its group, for group leaders) and reaps it.
    pub fn kill(&mut self) {
        self.stdin.take();
        let pid = self.child.id();
        // A group leader that already exited may leave children behind (workerd under node),
        // so the group is killed either way.
        if self.group {
            // Negative pid: the process group this child leads.
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ProcessGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Copies everything `reader` gives to `log`, line by line, in a background thread, and sends
/// each line to `lines` as long as someone listens.
fn drain_lines(reader: impl Read + Send + 'static, log: PathBuf, lines: mpsc::Sender<String>) {
    thread::spawn(move || {
        let mut out = File::options().create(true).append(true).open(&log).ok();
        for line in BufReader::new(reader).lines() {
            let Ok(line) = line else { break };
            if let Some(out) = out.as_mut() {
                let _ = writeln!(out, "{line}");
            }
            let _ = lines.send(line);
        }
    });
}

/// Waits up to `timeout` for a line for which `pick` returns something.
fn wait_for_line<T>(
    rx: &mpsc::Receiver<String>,
    timeout: Duration,
    mut pick: impl FnMut(&str) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.checked_duration_since(Instant::now())?;
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(found) = pick(&line) {
                    return Some(found);
                }
            }
            Err(_) => return None,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The seeded cache

/// A signed binary cache made by the Nix client: a closure with references, plus one path
/// whose NAR is over 64 MiB (stored uncompressed).
#[derive(Debug)]
pub struct Seed {
    /// The binary cache: what the bucket holds.
    pub cache: PathBuf,
    pub public_key: String,
    pub top_path: String,
    /// Every store path of the closure of `top_path`.
    pub closure: Vec<String>,
    pub large_path: String,
}

/// The fields of a narinfo the tests need.
#[derive(Debug, Clone)]
pub struct Narinfo {
    pub store_path: String,
    /// Path of the NAR relative to the cache root, e.g. `nar/<filehash>.nar.xz`.
    pub url: String,
    pub file_size: u64,
    pub references: Vec<String>,
}

impl Seed {
    /// The 32-character hash part of a store path.
    pub fn hash_of(store_path: &str) -> &str {
        let base = store_path.rsplit('/').next().unwrap_or(store_path);
        &base[..32]
    }

    pub fn narinfo_file(&self, store_path: &str) -> PathBuf {
        self.cache
            .join(format!("{}.narinfo", Self::hash_of(store_path)))
    }

    pub fn narinfo(&self, store_path: &str) -> Narinfo {
        let text = fs::read_to_string(self.narinfo_file(store_path)).expect("read narinfo");
        let mut fields = BTreeMap::new();
        for line in text.lines() {
            if let Some((k, v)) = line.split_once(": ") {
                fields.insert(k.to_string(), v.to_string());
            }
        }
        Narinfo {
            store_path: fields["StorePath"].clone(),
            url: fields["URL"].clone(),
            file_size: fields["FileSize"].parse().expect("FileSize"),
            references: fields
                .get("References")
                .map(|r| r.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
        }
    }
}

/// The seeded cache for this test binary, made on first use.
pub fn seed() -> &'static Seed {
    static SEED: OnceLock<Seed> = OnceLock::new();
    SEED.get_or_init(|| {
        let dir = scratch_root().join("seed");
        if dir.exists() {
            fs::remove_dir_all(&dir).expect("remove the previous seed");
        }
        fs::create_dir_all(&dir).expect("create seed dir");
        let cache = dir.join("cache");
        let meta = dir.join("meta");
        let out = Command::new("bash")
            .arg(repo_root().join("scripts/seed-cache.sh"))
            .arg("--large")
            .arg("--meta")
            .arg(&meta)
            .arg(&cache)
            .env("TMPDIR", &dir)
            .output()
            .expect("run scripts/seed-cache.sh");
        assert!(
            out.status.success(),
            "scripts/seed-cache.sh failed:\n{}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let read = |name: &str| {
            fs::read_to_string(meta.join(name))
                .unwrap_or_else(|e| panic!("seed meta {name}: {e}"))
                .trim()
                .to_string()
        };
        Seed {
            cache,
            public_key: read("public-key"),
            top_path: read("top-path"),
            closure: read("closure").lines().map(str::to_string).collect(),
            large_path: read("large-path"),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// The origin: s3s-fs behind a counting proxy

/// One request as the origin received it.
#[derive(Debug, Clone)]
pub struct OriginRequest {
    pub method: String,
    pub target: String,
    /// Header names lowercased, in the order received.
    pub headers: Vec<(String, String)>,
}

impl OriginRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// A TCP proxy on 127.0.0.1 that forwards bytes unchanged to `upstream` and records the head
/// of every HTTP request passing through. Bytes are not altered, so SigV4 signatures (which
/// cover the Host header) still verify at the upstream.
#[derive(Debug)]
pub struct CountingProxy {
    pub port: u16,
    requests: Arc<Mutex<Vec<OriginRequest>>>,
    stop: Arc<AtomicBool>,
}

impl CountingProxy {
    pub fn start(upstream: SocketAddr) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("proxy addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, stopping) = (requests.clone(), stop.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let reqs = reqs.clone();
                thread::spawn(move || proxy_connection(client, upstream, reqs));
            }
        });
        CountingProxy {
            port,
            requests,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<OriginRequest> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and closes the listener.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn proxy_connection(
    mut client: TcpStream,
    upstream: SocketAddr,
    requests: Arc<Mutex<Vec<OriginRequest>>>,
) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(300)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    // Read the first request head before connecting, so that a request is counted even when
    // the upstream is down (the client then sees the connection close).
    let mut server: Option<TcpStream> = None;
    let mut body_left: u64 = 0;
    loop {
        // Forward any pending body bytes of the current request unparsed.
        if body_left > 0 && !buf.is_empty() {
            let n = (body_left as usize).min(buf.len());
            if let Some(s) = server.as_mut() {
                if s.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
            buf.drain(..n);
            body_left -= n as u64;
            continue;
        }
        if body_left == 0 {
            if let Some(end) = find_head_end(&buf) {
                let head = buf[..end].to_vec();
                buf.drain(..end);
                let request = parse_request_head(&head);
                body_left = request
                    .header("content-length")
                    .and_then(|v| v.trim().parse().ok())
                    .unwrap_or(0);
                requests.lock().unwrap().push(request);
                if server.is_none() {
                    let Ok(s) = TcpStream::connect(upstream) else {
                        let _ = client.shutdown(Shutdown::Both);
                        return;
                    };
                    let (mut from, mut to) = match (s.try_clone(), client.try_clone()) {
                        (Ok(f), Ok(t)) => (f, t),
                        _ => return,
                    };
                    thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(Shutdown::Write);
                    });
                    server = Some(s);
                }
                if let Some(s) = server.as_mut() {
                    if s.write_all(&head).is_err() {
                        return;
                    }
                }
                continue;
            }
        }
        match client.read(&mut chunk) {
            Ok(0) | Err(_) => {
                if let Some(s) = server.as_ref() {
                    let _ = s.shutdown(Shutdown::Write);
                }
                return;
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn parse_request_head(head: &[u8]) -> OriginRequest {
    let text = String::from_utf8_lossy(head);
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or_default().to_string();
    let target = parts.next().unwrap_or_default().to_string();
    let headers = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    OriginRequest {
        method,
        target,
        headers,
    }
}

// ---------------------------------------------------------------------------------------------
// An origin that misbehaves on purpose

/// An HTTP origin on 127.0.0.1 that answers each request with the raw bytes scripted for it
/// (the first script whose key the request target ends with; an S3 `NoSuchKey` 404 for any
/// other) and then closes the connection. For what the Worker makes of an origin that answers
/// garbage; every request is recorded. Stopped when dropped.
#[derive(Debug)]
pub struct ScriptedOrigin {
    pub port: u16,
    requests: Arc<Mutex<Vec<OriginRequest>>>,
    stop: Arc<AtomicBool>,
}

impl ScriptedOrigin {
    pub fn start(scripts: Vec<(String, Vec<u8>)>) -> ScriptedOrigin {
        ScriptedOrigin::start_with(scripts, false)
    }

    /// [`ScriptedOrigin::start`], but each answer waits until the request's body (its
    /// `Content-Length`) has been read whole, as an S3 server's answer to a PUT does.
    pub fn start_reading(scripts: Vec<(String, Vec<u8>)>) -> ScriptedOrigin {
        ScriptedOrigin::start_with(scripts, true)
    }

    fn start_with(scripts: Vec<(String, Vec<u8>)>, read_body: bool) -> ScriptedOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind scripted origin");
        let port = listener.local_addr().expect("scripted origin addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (reqs, stopping) = (requests.clone(), stop.clone());
        let scripts = Arc::new(scripts);
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (reqs, scripts) = (reqs.clone(), scripts.clone());
                thread::spawn(move || answer_scripted(conn, &scripts, &reqs, read_body));
            }
        });
        ScriptedOrigin {
            port,
            requests,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// How many requests reached the origin for targets ending with `key`.
    pub fn count_for(&self, key: &str) -> usize {
        let requests = self.requests.lock().unwrap();
        requests.iter().filter(|r| r.target.ends_with(key)).count()
    }

    pub fn requests(&self) -> Vec<OriginRequest> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for ScriptedOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// An HTTP/1.1 answer: the status line's code and reason, these headers and
/// `connection: close`, then the body as given (no length is added: say it in `headers`, or
/// leave it to the close).
pub fn raw_answer(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("connection: close\r\n\r\n");
    let mut out = out.into_bytes();
    out.extend_from_slice(body);
    out
}

/// `body` in chunked transfer encoding, in chunks of at most 4 KiB.
pub fn chunked(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(4096) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn answer_scripted(
    mut conn: TcpStream,
    scripts: &[(String, Vec<u8>)],
    requests: &Mutex<Vec<OriginRequest>>,
    read_body: bool,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let request = parse_request_head(&buf[..end]);
    if read_body {
        let length: usize = request
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let mut have = buf.len() - end;
        while have < length {
            match conn.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => have += n,
            }
        }
    }
    let no_such_key;
    let answer = match scripts
        .iter()
        .find(|(key, _)| request.target.ends_with(key))
    {
        Some((_, answer)) => answer,
        None => {
            let body = b"<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code></Error>";
            no_such_key = raw_answer(
                "404 Not Found",
                &[("content-length", &body.len().to_string())],
                body,
            );
            &no_such_key
        }
    };
    requests.lock().unwrap().push(request);
    let _ = conn.write_all(answer);
    let _ = conn.flush();
    let _ = conn.shutdown(Shutdown::Both);
}

/// `s3s-fs` serving a bucket on 127.0.0.1, with random credentials, and a [`CountingProxy`]
/// in front of it. Point the Worker's `SPACES_ENDPOINT` at [`S3Origin::endpoint`].
#[derive(Debug)]
pub struct S3Origin {
    pub proxy: CountingProxy,
    pub s3s_fs: ProcessGuard,
    pub direct_port: u16,
    pub bucket: String,
    pub access_key: String,
    pub secret_key: String,
    _dir: tempfile::TempDir,
}

impl S3Origin {
    /// Serves `cache` as bucket `bucket` (the bucket folder is a symlink to it).
    pub fn start(cache: &Path, bucket: &str) -> S3Origin {
        let dir = temp_dir("s3-");
        let root = dir.path().join("root");
        fs::create_dir_all(&root).expect("create s3 root");
        std::os::unix::fs::symlink(cache, root.join(bucket)).expect("link the bucket");
        let access_key = format!("AK{}", random_hex(8).to_uppercase());
        let secret_key = random_hex(20);
        let log = dir.path().join("s3s-fs.log");
        let mut cmd = Command::new(tool("s3s-fs"));
        // s3s-fs takes its keys only as arguments; these are throwaway local credentials.
        cmd.args(["--host", "127.0.0.1", "--port", "0", "--access-key"])
            .arg(&access_key)
            .arg("--secret-key")
            .arg(&secret_key)
            .arg(&root)
            .env("RUST_LOG", "s3s_fs=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped());
        let mut guard = ProcessGuard::spawn("s3s-fs", cmd, &log, false);
        let (tx, rx) = mpsc::channel();
        drain_lines(guard.take_stdout().expect("stdout"), log.clone(), tx);
        let port = wait_for_line(&rx, Duration::from_secs(20), |line| {
            let rest = line.split("server is running at http://").nth(1)?;
            let addr: SocketAddr = rest.split_whitespace().next()?.parse().ok()?;
            Some(addr.port())
        })
        .unwrap_or_else(|| panic!("s3s-fs did not start\n{}", guard.log_tail()));
        let proxy = CountingProxy::start(SocketAddr::from(([127, 0, 0, 1], port)));
        S3Origin {
            proxy,
            s3s_fs: guard,
            direct_port: port,
            bucket: bucket.to_string(),
            access_key,
            secret_key,
            _dir: dir,
        }
    }

    /// The endpoint the Worker should use: the counting proxy.
    pub fn endpoint(&self) -> String {
        self.proxy.url()
    }

    /// The Worker bindings for this origin with the right credentials.
    pub fn bindings(&self) -> Vec<(String, String)> {
        vec![
            ("SPACES_ENDPOINT".into(), self.endpoint()),
            ("SPACES_BUCKET".into(), self.bucket.clone()),
            ("SPACES_REGION".into(), "us-east-1".into()),
            ("SPACES_ACCESS_KEY_ID".into(), self.access_key.clone()),
            ("SPACES_SECRET_ACCESS_KEY".into(), self.secret_key.clone()),
            ("STORE_DIR".into(), "/nix/store".into()),
            ("WANT_MASS_QUERY".into(), "1".into()),
            ("PRIORITY".into(), "40".into()),
        ]
    }
}

// ---------------------------------------------------------------------------------------------
// The Worker

/// Every binding name the Worker reads; none is inherited from the test's environment.
pub const BINDING_NAMES: &[&str] = &nix_spaces_cache::config::names::ALL;

/// The built Worker (build/index.js) under workerd, via `scripts/run-worker.mjs`.
#[derive(Debug)]
pub struct Worker {
    pub port: u16,
    pub process: ProcessGuard,
    _dir: tempfile::TempDir,
}

impl Worker {
    /// Starts the Worker with exactly these bindings (given in the child's environment, not
    /// on its command line).
    pub fn start(bindings: &[(String, String)]) -> Worker {
        Worker::start_build("build", "bash scripts/build-worker.sh", bindings)
    }

    /// Starts the Worker built into `dir` (relative to the repository) by `how`.
    pub fn start_build(dir: &str, how: &str, bindings: &[(String, String)]) -> Worker {
        let entry = repo_root().join(dir).join("index.js");
        assert!(
            entry.is_file(),
            "{} is missing: build the Worker first ({how})",
            entry.display()
        );
        let dir = temp_dir("worker-");
        let log = dir.path().join("worker.log");
        let mut cmd = Command::new("node");
        cmd.arg(repo_root().join("scripts/run-worker.mjs"))
            .args(["--port", "0", "--exit-on-stdin-close", "--script"])
            .arg(&entry)
            .current_dir(repo_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for name in BINDING_NAMES {
            cmd.env_remove(name);
        }
        for (name, value) in bindings {
            cmd.env(name, value);
        }
        let mut process = ProcessGuard::spawn("worker", cmd, &log, true);
        let (tx, rx) = mpsc::channel();
        drain_lines(process.take_stdout().expect("stdout"), log.clone(), tx);
        let port = wait_for_line(&rx, Duration::from_secs(60), |line| {
            let url = line.strip_prefix("ready: http://")?;
            url.parse::<SocketAddr>().ok().map(|a| a.port())
        })
        .unwrap_or_else(|| panic!("the Worker did not start\n{}", process.log_tail()));
        Worker {
            port,
            process,
            _dir: dir,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn get(&self, target: &str) -> http::Response {
        http::request(self.port, "GET", target, &[])
    }

    pub fn head(&self, target: &str) -> http::Response {
        http::request(self.port, "HEAD", target, &[])
    }

    pub fn request(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> http::Response {
        http::request(self.port, method, target, headers)
    }
}

// ---------------------------------------------------------------------------------------------
// The Nix client

/// The Nix client as root without a daemon: a temp `NIX_CONF_DIR`, a fresh `XDG_CACHE_HOME`
/// (Nix remembers missing narinfos) and a chroot store.
#[derive(Debug)]
pub struct NixEnv {
    pub store: PathBuf,
    conf_dir: PathBuf,
    xdg: PathBuf,
    dir: tempfile::TempDir,
}

impl NixEnv {
    pub fn new() -> NixEnv {
        let dir = temp_dir("nix-");
        let conf_dir = dir.path().join("conf");
        let xdg = dir.path().join("xdg");
        fs::create_dir_all(&conf_dir).expect("create NIX_CONF_DIR");
        fs::create_dir_all(&xdg).expect("create XDG_CACHE_HOME");
        fs::write(
            conf_dir.join("nix.conf"),
            "experimental-features = nix-command\nbuild-users-group =\nsandbox = false\nsubstituters =\n",
        )
        .expect("write nix.conf");
        NixEnv {
            store: dir.path().join("store"),
            conf_dir,
            xdg,
            dir,
        }
    }

    /// `nix ARGS` in this environment, against this store.
    pub fn nix(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("nix");
        cmd.args(args)
            .arg("--store")
            .arg(&self.store)
            .env("NIX_CONF_DIR", &self.conf_dir)
            .env("XDG_CACHE_HOME", &self.xdg)
            .env_remove("NIX_REMOTE")
            .env_remove("NIX_PATH")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `nix ARGS` and returns (success, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String, String) {
        let out = self.nix(args).output().expect("run nix");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `nix copy --from SUBSTITUTER` of the seeded closure with signatures required and the
    /// seed's key trusted; then asserts the whole closure arrived and its signatures verify.
    pub fn copy_seeded_closure(&self, substituter: &str, seed: &Seed) {
        let (ok, _, err) = self.run(&[
            "copy",
            "--from",
            substituter,
            "--option",
            "require-sigs",
            "true",
            "--option",
            "trusted-public-keys",
            &seed.public_key,
            &seed.top_path,
        ]);
        assert!(ok, "nix copy --from {substituter} failed:\n{err}");
        let (ok, out, err) = self.run(&["path-info", "-r", &seed.top_path]);
        assert!(ok, "nix path-info: {err}");
        let mut got: Vec<&str> = out.lines().map(str::trim).collect();
        got.sort();
        let mut want: Vec<&str> = seed.closure.iter().map(String::as_str).collect();
        want.sort();
        assert_eq!(got, want, "the closure did not arrive whole");
        let (ok, _, err) = self.run(&[
            "store",
            "verify",
            "--sigs-needed",
            "1",
            "--option",
            "trusted-public-keys",
            &seed.public_key,
            "-r",
            &seed.top_path,
        ]);
        assert!(ok, "nix store verify: {err}");
    }
}

impl Default for NixEnv {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for NixEnv {
    fn drop(&mut self) {
        // The store's files are read-only; make them removable.
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+w")
            .arg(self.dir.path())
            .stderr(Stdio::null())
            .status();
    }
}

// ---------------------------------------------------------------------------------------------
// A raw HTTP/1.1 client

pub mod http {
    use std::fs::File;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::path::Path;
    use std::time::Duration;

    use sha2::{Digest, Sha256};

    #[derive(Debug, Clone)]
    pub struct Response {
        pub status: u16,
        /// Header names lowercased, in the order received.
        pub headers: Vec<(String, String)>,
        /// The body, unless it was only hashed or compared (see `body_len`).
        pub body: Vec<u8>,
        /// Bytes of body received.
        pub body_len: u64,
        /// SHA-256 of the body, hex.
        pub body_sha256: String,
        /// For [`request_compare`]: the offset of the first byte that differs from the file,
        /// or `None` if every byte received matched.
        pub first_mismatch: Option<u64>,
    }

    impl Response {
        pub fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        pub fn text(&self) -> String {
            String::from_utf8_lossy(&self.body).into_owned()
        }

        /// Everything the response carries, as text (head and body), for leak checks.
        pub fn raw_text(&self) -> String {
            let mut s = format!("{}\n", self.status);
            for (n, v) in &self.headers {
                s.push_str(&format!("{n}: {v}\n"));
            }
            s.push_str(&self.text());
            s
        }
    }

    /// Sends one request with the target exactly as given, reads the whole response. A HEAD
    /// response is read to the end of the connection too, so a body sent by mistake shows.
    pub fn request(port: u16, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
        let mut body = Vec::new();
        let mut response = exchange(port, method, target, headers, &mut |b: &[u8]| {
            body.extend_from_slice(b)
        });
        response.body = body;
        response
    }

    /// Like [`request`], but compares the body with `file` as it arrives instead of keeping
    /// it (for bodies of many MiB).
    pub fn request_compare(
        port: u16,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        file: &Path,
    ) -> Response {
        let mut expected = BufReader::new(File::open(file).expect("open the expected file"));
        let mut offset = 0u64;
        let mut mismatch = None;
        let mut want = Vec::new();
        let mut response = exchange(port, method, target, headers, &mut |got: &[u8]| {
            if mismatch.is_none() {
                want.resize(got.len(), 0);
                let read = read_full(&mut expected, &mut want);
                if read < got.len() || want != got {
                    let at = want[..read]
                        .iter()
                        .zip(got)
                        .position(|(a, b)| a != b)
                        .unwrap_or(read);
                    mismatch = Some(offset + at as u64);
                }
            }
            offset += got.len() as u64;
        });
        let file_len = std::fs::metadata(file).expect("stat expected file").len();
        if mismatch.is_none() && response.body_len < file_len {
            mismatch = Some(response.body_len);
        }
        response.first_mismatch = mismatch;
        response
    }

    fn read_full(reader: &mut impl Read, buf: &mut [u8]) -> usize {
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => filled += n,
            }
        }
        filled
    }

    fn exchange(
        port: u16,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Response {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("set timeout");
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        if method != "GET" && method != "HEAD" {
            head.push_str("Content-Length: 0\r\n");
        }
        head.push_str("Connection: close\r\n\r\n");
        stream
            .write_all(head.as_bytes())
            .unwrap_or_else(|e| panic!("send {method} {target}: {e}"));

        let mut reader = BufReader::with_capacity(64 * 1024, stream);
        let mut status_line = String::new();
        reader
            .read_line(&mut status_line)
            .unwrap_or_else(|e| panic!("read status of {method} {target}: {e}"));
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {status_line:?} for {method} {target}"));
        let mut response_headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read header line");
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                response_headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        let header = |name: &str| {
            response_headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v): &(String, String)| v.clone())
        };

        let mut hasher = Sha256::new();
        let mut len = 0u64;
        let mut counted = |bytes: &[u8]| {
            hasher.update(bytes);
            len += bytes.len() as u64;
            sink(bytes);
        };
        if method == "HEAD" || status == 204 || status == 304 {
            // No body is allowed; whatever arrives before the close is reported as body.
            copy_to_end(&mut reader, &mut counted);
        } else {
            let chunked = header("transfer-encoding")
                .map(|v| v.to_ascii_lowercase().contains("chunked"))
                .unwrap_or(false);
            if chunked {
                read_chunked(&mut reader, &mut counted);
            } else if let Some(n) = header("content-length").and_then(|v| v.parse::<u64>().ok()) {
                copy_n(&mut reader, n, &mut counted);
            } else {
                copy_to_end(&mut reader, &mut counted);
            }
        }
        Response {
            status,
            headers: response_headers,
            body: Vec::new(),
            body_len: len,
            body_sha256: super::hex(&hasher.finalize()),
            first_mismatch: None,
        }
    }

    fn copy_n(reader: &mut impl Read, mut n: u64, sink: &mut impl FnMut(&[u8])) {
        let mut buf = vec![0u8; 64 * 1024];
        while n > 0 {
            let want = buf.len().min(n as usize);
            let got = reader.read(&mut buf[..want]).expect("read body");
            if got == 0 {
                panic!("body ended {n} bytes early");
            }
            sink(&buf[..got]);
            n -= got as u64;
        }
    }

    fn copy_to_end(reader: &mut impl Read, sink: &mut impl FnMut(&[u8])) {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(got) => sink(&buf[..got]),
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return,
                Err(e) => panic!("read body: {e}"),
            }
        }
    }

    fn read_chunked(reader: &mut impl BufRead, sink: &mut impl FnMut(&[u8])) {
        loop {
            let mut size_line = String::new();
            reader.read_line(&mut size_line).expect("read chunk size");
            let size_hex = size_line.trim().split(';').next().unwrap_or("");
            let size = u64::from_str_radix(size_hex, 16)
                .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
            if size == 0 {
                // Trailers, then the empty line.
                loop {
                    let mut line = String::new();
                    let n = reader.read_line(&mut line).expect("read trailer");
                    if n == 0 || line.trim().is_empty() {
                        return;
                    }
                }
            }
            copy_n(reader, size, sink);
            let mut crlf = String::new();
            reader.read_line(&mut crlf).expect("read chunk end");
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Many checks, one report

/// Runs named checks one after another against a shared stack; a failing check does not stop
/// the others. [`Checks::finish`] panics with every failure.
#[derive(Debug, Default)]
pub struct Checks {
    failures: Vec<String>,
    passed: usize,
}

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    pub fn check(&mut self, name: &str, f: impl FnOnce()) {
        match catch_unwind(AssertUnwindSafe(f)) {
            Ok(()) => {
                self.passed += 1;
                println!("ok: {name}");
            }
            Err(panic) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "panic".to_string());
                println!("FAILED: {name}: {msg}");
                self.failures.push(format!("{name}: {msg}"));
            }
        }
    }

    /// Panics listing every failed check, with extra diagnostics (process logs) appended.
    pub fn finish(self, diagnostics: impl FnOnce() -> String) {
        if !self.failures.is_empty() {
            panic!(
                "{} of {} checks failed:\n- {}\n{}",
                self.failures.len(),
                self.failures.len() + self.passed,
                self.failures.join("\n- "),
                diagnostics()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Uploads: request bodies, an unsigned copy of the seed, netrc files

/// Requests with a body, for uploads: a declared `Content-Length`, chunked (no length), or a
/// file streamed from disk. The response is read like [`http::request`]'s.
pub mod upload {
    use std::fs::File;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpStream;
    use std::path::Path;
    use std::time::Duration;

    use super::http::Response;

    /// What goes after the request head.
    pub enum Body<'a> {
        /// These bytes with their `Content-Length`.
        Bytes(&'a [u8]),
        /// These bytes in chunked encoding, without a `Content-Length`.
        Chunked(&'a [u8]),
        /// A file's bytes with its `Content-Length`, read in 64 KiB pieces.
        File(&'a Path),
        /// A `Content-Length` that says more than the bytes sent (the connection then closes).
        Short { declared: u64, sent: &'a [u8] },
    }

    pub fn send(
        port: u16,
        method: &str,
        target: &str,
        headers: &[(&str, &str)],
        body: Body,
    ) -> Response {
        let mut stream = TcpStream::connect(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(120)))
            .expect("set timeout");
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
        for (n, v) in headers {
            head.push_str(&format!("{n}: {v}\r\n"));
        }
        match &body {
            Body::Bytes(b) => head.push_str(&format!("Content-Length: {}\r\n", b.len())),
            Body::Chunked(_) => head.push_str("Transfer-Encoding: chunked\r\n"),
            Body::File(p) => head.push_str(&format!(
                "Content-Length: {}\r\n",
                std::fs::metadata(p).expect("stat the body file").len()
            )),
            Body::Short { declared, .. } => {
                head.push_str(&format!("Content-Length: {declared}\r\n"))
            }
        }
        head.push_str("Connection: close\r\n\r\n");
        // The server may answer (and close) before reading the whole body: ignore write errors.
        let _ = stream.write_all(head.as_bytes());
        let _ = match body {
            Body::Bytes(b) => stream.write_all(b),
            Body::Chunked(b) => {
                let mut all = Vec::new();
                for piece in b.chunks(1000) {
                    all.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                    all.extend_from_slice(piece);
                    all.extend_from_slice(b"\r\n");
                }
                all.extend_from_slice(b"0\r\n\r\n");
                stream.write_all(&all)
            }
            Body::File(p) => {
                let mut file = File::open(p).expect("open the body file");
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    let n = file.read(&mut buf).expect("read the body file");
                    if n == 0 {
                        break Ok(());
                    }
                    if let Err(e) = stream.write_all(&buf[..n]) {
                        break Err(e);
                    }
                }
            }
            Body::Short { sent, .. } => {
                let r = stream.write_all(sent);
                let _ = stream.shutdown(std::net::Shutdown::Write);
                r
            }
        };
        read_response(stream)
    }

    fn read_response(stream: TcpStream) -> Response {
        let mut reader = BufReader::new(stream);
        let mut status_line = String::new();
        let _ = reader.read_line(&mut status_line);
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            let line = line.trim_end_matches(['\r', '\n']);
            if line.is_empty() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                headers.push((n.trim().to_ascii_lowercase(), v.trim().to_string()));
            }
        }
        // Read exactly the body: the server may keep the connection open after it.
        let chunked = headers
            .iter()
            .any(|(n, v)| n == "transfer-encoding" && v.to_ascii_lowercase().contains("chunked"));
        let length = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse::<usize>().ok());
        let mut raw = Vec::new();
        if status == 204 || status == 304 {
        } else if chunked {
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                raw.extend_from_slice(line.as_bytes());
                if line == "0\r\n" {
                    let mut end = String::new();
                    let _ = reader.read_line(&mut end);
                    break;
                }
                let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                    .unwrap_or(0);
                let mut chunk = vec![0u8; size + 2];
                if reader.read_exact(&mut chunk).is_err() {
                    break;
                }
                raw.extend_from_slice(&chunk);
                line.clear();
            }
        } else if let Some(length) = length {
            raw.resize(length, 0);
            let got = read_up_to(&mut reader, &mut raw);
            raw.truncate(got);
        } else {
            let _ = reader.read_to_end(&mut raw);
        }
        let body = if chunked { dechunk(&raw) } else { raw };
        Response {
            status,
            headers,
            body_len: body.len() as u64,
            body_sha256: super::sha256_hex(&body),
            body,
            first_mismatch: None,
        }
    }

    fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> usize {
        let mut filled = 0;
        while filled < buf.len() {
            match reader.read(&mut buf[filled..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => filled += n,
            }
        }
        filled
    }

    fn dechunk(mut raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
            let size_text = String::from_utf8_lossy(&raw[..end]);
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .unwrap_or(0);
            raw = &raw[end + 2..];
            if size == 0 || raw.len() < size {
                break;
            }
            out.extend_from_slice(&raw[..size]);
            raw = raw.get(size + 2..).unwrap_or(&[]);
        }
        out
    }
}

/// A copy of the seeded cache with every `Sig:` line removed: what an unsigned push holds.
pub fn unsigned_copy(seed: &Seed) -> tempfile::TempDir {
    let dir = temp_dir("unsigned-");
    let copy = |from: &Path, to: &Path| {
        fs::create_dir_all(to).expect("create dir");
        for entry in fs::read_dir(from).expect("read dir") {
            let entry = entry.expect("dir entry");
            let path = entry.path();
            let target = to.join(entry.file_name());
            if path.is_dir() {
                continue;
            }
            if path.extension().is_some_and(|e| e == "narinfo") {
                let text = fs::read_to_string(&path).expect("read narinfo");
                let kept: String = text
                    .lines()
                    .filter(|l| !l.starts_with("Sig: "))
                    .map(|l| format!("{l}\n"))
                    .collect();
                fs::write(&target, kept).expect("write narinfo");
            } else {
                fs::copy(&path, &target).expect("copy file");
            }
        }
    };
    copy(&seed.cache, dir.path());
    copy(&seed.cache.join("nar"), &dir.path().join("nar"));
    dir
}

/// A netrc file (mode 0600) giving `token` as the password for 127.0.0.1.
pub fn netrc_file(dir: &Path, token: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("netrc");
    fs::write(
        &path,
        format!("machine 127.0.0.1 login nix password {token}\n"),
    )
    .expect("write netrc");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod netrc");
    path
}

/// Every request the origin received with this method.
pub fn origin_requests_with_method(origin: &S3Origin, method: &str) -> Vec<OriginRequest> {
    origin
        .proxy
        .requests()
        .into_iter()
        .filter(|r| r.method == method)
        .collect()
}

// Segmented objects, typed bindings, a failing edge cache, faults mid-body

/// How [`Worker::start_with`] starts the Worker.
#[derive(Debug, Default)]
pub struct WorkerOptions {
    /// Bindings as `wrangler.toml` gives them: strings, numbers and booleans (written to a
    /// bindings file of mode 0600, not the command line).
    pub bindings: Vec<(String, serde_json::Value)>,
    /// Give the Worker a `caches.default` whose every call fails.
    pub failing_cache: bool,
}

impl WorkerOptions {
    /// Options with these string bindings.
    pub fn strings(bindings: &[(String, String)]) -> WorkerOptions {
        WorkerOptions {
            bindings: bindings
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
                .collect(),
            failing_cache: false,
        }
    }

    /// Sets (or replaces) one binding.
    pub fn set(mut self, name: &str, value: serde_json::Value) -> WorkerOptions {
        self.bindings.retain(|(k, _)| k != name);
        self.bindings.push((name.to_string(), value));
        self
    }
}

impl Worker {
    /// Starts the release build (`build/`) with typed bindings and options.
    pub fn start_with(options: WorkerOptions) -> Worker {
        let entry = repo_root().join("build/index.js");
        assert!(
            entry.is_file(),
            "{} is missing: build the Worker first (bash scripts/build-worker.sh)",
            entry.display()
        );
        let dir = temp_dir("worker-");
        let log = dir.path().join("worker.log");
        let file = dir.path().join("bindings.json");
        let object: serde_json::Map<String, serde_json::Value> =
            options.bindings.into_iter().collect();
        {
            use std::os::unix::fs::OpenOptionsExt;
            let mut out = File::options()
                .create(true)
                .write(true)
                .truncate(true)
                .mode(0o600)
                .open(&file)
                .expect("create the bindings file");
            serde_json::to_writer(&mut out, &object).expect("write the bindings file");
        }
        let mut cmd = Command::new("node");
        cmd.arg(repo_root().join("scripts/run-worker.mjs"))
            .args(["--port", "0", "--exit-on-stdin-close", "--script"])
            .arg(&entry)
            .arg("--bindings")
            .arg(&file)
            .current_dir(repo_root())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        if options.failing_cache {
            cmd.arg("--failing-cache");
        }
        for name in BINDING_NAMES {
            cmd.env_remove(name);
        }
        let mut process = ProcessGuard::spawn("worker", cmd, &log, true);
        let (tx, rx) = mpsc::channel();
        drain_lines(process.take_stdout().expect("stdout"), log.clone(), tx);
        let port = wait_for_line(&rx, Duration::from_secs(60), |line| {
            let url = line.strip_prefix("ready: http://")?;
            url.parse::<SocketAddr>().ok().map(|a| a.port())
        })
        .unwrap_or_else(|| panic!("the Worker did not start\n{}", process.log_tail()));
        Worker {
            port,
            process,
            _dir: dir,
        }
    }

    /// Everything the Worker logged so far (its console and the runtime's).
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.process.log).unwrap_or_default()
    }

    /// Waits up to `timeout` until the Worker's log holds `count` lines containing `needle`;
    /// false if it never does.
    pub fn wait_for_log(&self, needle: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            if self
                .log_text()
                .lines()
                .filter(|l| l.contains(needle))
                .count()
                >= count
            {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            thread::sleep(Duration::from_millis(50));
        }
    }

    /// The resident memory of the workerd process serving this Worker, in KiB.
    pub fn workerd_rss_kib(&self) -> Option<u64> {
        let group = self.process.pid().to_string();
        for entry in fs::read_dir("/proc").ok()?.flatten() {
            let Ok(stat) = fs::read_to_string(entry.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid pgrp ...
            let Some((comm, rest)) = stat.split_once(") ") else {
                continue;
            };
            let pgrp = rest.split_whitespace().nth(2);
            if comm.ends_with("(workerd") && pgrp == Some(group.as_str()) {
                let status = fs::read_to_string(entry.path().join("status")).ok()?;
                return status
                    .lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.split_whitespace().next()?.parse().ok());
            }
        }
        None
    }
}

/// An answer read to the end of its connection, however it ends: a body cut short of its
/// `Content-Length` shows as `complete == false` instead of a panic.
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Whether the body is as long as its `Content-Length` said.
    pub complete: bool,
}

impl RawResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// GET `target` with `headers`, reading at most `rate` bytes per second (none: full speed),
/// to the end of the connection; `during` is called about every 100 ms while the body
/// arrives (for sampling memory).
pub fn get_raw(
    port: u16,
    target: &str,
    headers: &[(&str, &str)],
    rate: Option<u64>,
    mut during: impl FnMut(),
) -> RawResponse {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect to the Worker");
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .expect("set timeout");
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    stream.write_all(head.as_bytes()).expect("send the request");
    let started = Instant::now();
    let mut last_tick = Instant::now();
    let mut raw = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let want = match rate {
            Some(rate) => {
                // Read no faster than `rate` bytes per second since the start.
                let allowed = (started.elapsed().as_secs_f64() * rate as f64) as usize + 16 * 1024;
                if raw.len() >= allowed {
                    thread::sleep(Duration::from_millis(10));
                    if last_tick.elapsed() >= Duration::from_millis(100) {
                        during();
                        last_tick = Instant::now();
                    }
                    continue;
                }
                (allowed - raw.len()).min(buf.len())
            }
            None => buf.len(),
        };
        match stream.read(&mut buf[..want]) {
            Ok(0) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                ) =>
            {
                break
            }
            Err(e) => panic!("read the answer to {target}: {e}"),
        }
        if last_tick.elapsed() >= Duration::from_millis(100) {
            during();
            last_tick = Instant::now();
        }
    }
    let end = find_head_end(&raw).unwrap_or_else(|| panic!("no answer head for {target}"));
    let text = String::from_utf8_lossy(&raw[..end]).into_owned();
    let mut lines = text.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[end..].to_vec();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok());
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    let complete = if chunked {
        let (decoded, whole) = dechunk(&body);
        body = decoded;
        whole
    } else {
        length.is_some_and(|len| body.len() == len)
    };
    RawResponse {
        status,
        headers,
        body,
        complete,
    }
}

/// A chunked body decoded, and whether its last (empty) chunk arrived.
fn dechunk(mut raw: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(line_end) = raw.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let size = std::str::from_utf8(&raw[..line_end])
            .ok()
            .and_then(|s| usize::from_str_radix(s.split(';').next()?.trim(), 16).ok());
        let Some(size) = size else {
            return (out, false);
        };
        raw = &raw[line_end + 2..];
        if size == 0 {
            return (out, true);
        }
        if raw.len() < size {
            out.extend_from_slice(raw);
            return (out, false);
        }
        out.extend_from_slice(&raw[..size]);
        raw = raw.get(size + 2..).unwrap_or_default();
    }
}

/// One object a [`RangeOrigin`] serves: its bytes and `ETag`.
#[derive(Debug, Clone)]
pub struct OriginObject {
    pub bytes: Arc<Vec<u8>>,
    pub etag: String,
}

/// What a [`RangeOrigin`] serves, changeable while it runs.
#[derive(Debug, Default)]
pub struct RangeOriginState {
    /// Objects by the end of their request target (the key).
    pub objects: Vec<(String, OriginObject)>,
    /// A ranged GET whose range starts at `.0` sends `.1` bytes of its body, then drops the
    /// connection.
    pub cut: Option<(u64, usize)>,
}

/// An S3-like origin on 127.0.0.1 for faults s3s-fs cannot make: it answers GETs with Range
/// (206 and `Content-Range`, 416 past the end), `ETag` and `If-Match` (412 when it differs)
/// like S3, can change an object between requests and can drop a connection in the middle of
/// a body. It does not check signatures. Every request is recorded; stopped when dropped.
#[derive(Debug)]
pub struct RangeOrigin {
    pub port: u16,
    pub state: Arc<Mutex<RangeOriginState>>,
    requests: Arc<Mutex<Vec<OriginRequest>>>,
    stop: Arc<AtomicBool>,
}

impl RangeOrigin {
    pub fn start(objects: Vec<(String, OriginObject)>) -> RangeOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind range origin");
        let port = listener.local_addr().expect("range origin addr").port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(RangeOriginState { objects, cut: None }));
        let (reqs, stopping, shared) = (requests.clone(), stop.clone(), state.clone());
        thread::spawn(move || {
            for conn in listener.incoming() {
                if stopping.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let (reqs, shared) = (reqs.clone(), shared.clone());
                thread::spawn(move || answer_ranged(conn, &shared, &reqs));
            }
        });
        RangeOrigin {
            port,
            state,
            requests,
            stop,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn requests(&self) -> Vec<OriginRequest> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }
}

impl Drop for RangeOrigin {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

fn answer_ranged(
    mut conn: TcpStream,
    state: &Mutex<RangeOriginState>,
    requests: &Mutex<Vec<OriginRequest>>,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(30)));
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = find_head_end(&buf) {
            break end;
        }
        match conn.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let request = parse_request_head(&buf[..end]);
    requests.lock().unwrap().push(request.clone());
    let (object, cut) = {
        let state = state.lock().unwrap();
        let object = state
            .objects
            .iter()
            .find(|(key, _)| request.target.ends_with(key.as_str()))
            .map(|(_, o)| o.clone());
        (object, state.cut)
    };
    let xml = |status: &str, code: &str| {
        let body = format!("<?xml version=\"1.0\"?><Error><Code>{code}</Code></Error>");
        raw_answer(
            status,
            &[
                ("content-type", "application/xml"),
                ("content-length", &body.len().to_string()),
            ],
            body.as_bytes(),
        )
    };
    let Some(object) = object else {
        let _ = conn.write_all(&xml("404 Not Found", "NoSuchKey"));
        return;
    };
    if let Some(tag) = request.header("if-match") {
        if tag != object.etag {
            let _ = conn.write_all(&xml("412 Precondition Failed", "PreconditionFailed"));
            return;
        }
    }
    let total = object.bytes.len() as u64;
    let range = request.header("range").and_then(|r| {
        let (first, last) = r.strip_prefix("bytes=")?.split_once('-')?;
        let first: u64 = first.parse().ok()?;
        let last: u64 = if last.is_empty() {
            u64::MAX
        } else {
            last.parse().ok()?
        };
        Some((first, last))
    });
    let common = |extra: &[(&str, String)]| {
        let mut head = vec![
            ("etag".to_string(), object.etag.clone()),
            (
                "last-modified".to_string(),
                "Wed, 02 Dec 2026 06:00:00 GMT".to_string(),
            ),
            ("accept-ranges".to_string(), "bytes".to_string()),
            (
                "content-type".to_string(),
                "application/octet-stream".to_string(),
            ),
        ];
        head.extend(extra.iter().map(|(n, v)| (n.to_string(), v.clone())));
        head
    };
    let (status, headers, body): (&str, _, &[u8]) = match range {
        Some((first, _)) if first >= total => {
            let head = common(&[
                ("content-range", format!("bytes */{total}")),
                ("content-length", "0".to_string()),
            ]);
            ("416 Requested Range Not Satisfiable", head, &[])
        }
        Some((first, last)) => {
            let last = last.min(total - 1);
            let body = &object.bytes[first as usize..=last as usize];
            let head = common(&[
                ("content-range", format!("bytes {first}-{last}/{total}")),
                ("content-length", body.len().to_string()),
            ]);
            ("206 Partial Content", head, body)
        }
        None => {
            let head = common(&[("content-length", total.to_string())]);
            ("200 OK", head, &object.bytes[..])
        }
    };
    let named: Vec<(&str, &str)> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect();
    let head = raw_answer(status, &named, &[]);
    if conn.write_all(&head).is_err() {
        return;
    }
    let cut_at = match (cut, range) {
        (Some((at, after)), Some((first, _))) if at == first => Some(after),
        _ => None,
    };
    match cut_at {
        Some(after) => {
            let _ = conn.write_all(&body[..after.min(body.len())]);
            let _ = conn.flush();
            // Drop the connection in the middle of the body.
            let _ = conn.shutdown(Shutdown::Both);
        }
        None => {
            let _ = conn.write_all(body);
            let _ = conn.flush();
        }
    }
}

/// Puts `body` into the bucket of `origin` under `key` with a signed S3 PUT (s3s-fs keeps the
/// headers given, `Content-Encoding` among them). Panics unless s3s-fs answers 200.
pub fn put_object(origin: &S3Origin, key: &str, body: &[u8], headers: &[(&str, &str)]) {
    use nix_spaces_cache::sigv4::{self, Credentials, S3Request, SigningTime};
    let host = format!("127.0.0.1:{}", origin.direct_port);
    let path = sigv4::s3_object_path(&origin.bucket, key);
    let extra: Vec<(String, String)> = headers
        .iter()
        .map(|(n, v)| (n.to_ascii_lowercase(), v.to_string()))
        .collect();
    let payload = sha256_hex(body);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as f64;
    let signed = sigv4::sign_s3(
        &S3Request {
            method: "PUT",
            host: &host,
            path: &path,
            query: "",
            extra_headers: &extra,
            payload_hash: &payload,
        },
        &Credentials::new(origin.access_key.clone(), origin.secret_key.clone()),
        "us-east-1",
        SigningTime::from_unix_millis(now),
    );
    let mut stream = TcpStream::connect(("127.0.0.1", origin.direct_port)).expect("connect s3s-fs");
    let mut head = format!("PUT {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (n, v) in extra.iter().chain(signed.iter()) {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    ));
    stream.write_all(head.as_bytes()).expect("send PUT");
    stream.write_all(body).expect("send PUT body");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    assert!(
        answer.starts_with("HTTP/1.1 200"),
        "PUT {key} to s3s-fs: {answer}"
    );
}
