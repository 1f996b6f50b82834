//! `provision gc` end to end: the binary against `s3s-fs` (SigV4 verified) serving a cache the
//! Nix client made (`scripts/seed-cache.sh`, then `nix copy --to file://…` of more paths), with
//! object ages set by the test on the files' modification times (s3s-fs lists a file's mtime as
//! its `LastModified`), not by sleeping. Afterwards the Nix client copies every kept path out
//! of the bucket into a fresh store that trusts only the cache's key: each closure verifies.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant, SystemTime};

const BUCKET: &str = "nix-store";
const ACCESS_KEY: &str = "AKGCTESTLOCAL0000000";
const DAY: u64 = 86_400;

// ---------------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------------

fn tool(name: &str) -> PathBuf {
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    let cargo = home.join(".cargo/bin").join(name);
    if cargo.is_file() {
        cargo
    } else {
        PathBuf::from(name)
    }
}

/// `s3s-fs` on 127.0.0.1, killed by process id when dropped.
struct S3sFs {
    child: Child,
    port: u16,
}

impl S3sFs {
    /// On a port of its own choosing (`--port 0`), read from what it prints, so no other
    /// server can take the port first.
    fn start(root: &Path, secret: &str) -> S3sFs {
        let mut child = Command::new(tool("s3s-fs"))
            .args(["--host", "127.0.0.1", "--port", "0"])
            .args(["--access-key", ACCESS_KEY, "--secret-key", secret])
            .arg(root)
            .env("RUST_LOG", "s3s_fs=info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start s3s-fs (scripts/install.sh installs it)");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Some(rest) = line.split("server is running at http://").nth(1) {
                    let port = rest
                        .split_whitespace()
                        .next()
                        .and_then(|a| a.parse::<std::net::SocketAddr>().ok())
                        .map(|a| a.port());
                    let _ = tx.send(port);
                }
            }
        });
        let mut server = S3sFs { child, port: 0 };
        match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(Some(port)) => server.port = port,
            _ => panic!("s3s-fs did not say where it listens within 30 s"),
        }
        server
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for S3sFs {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A secret for one run, never printed.
fn secret() -> String {
    let mut bytes = [0u8; 16];
    fs::File::open("/dev/urandom")
        .unwrap()
        .read_exact(&mut bytes)
        .unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `provision gc` (flags stand in for a config file) against `endpoint`.
fn gc(dir: &Path, endpoint: &str, secret: &str, extra: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(dir)
        .args([
            "--hostname",
            "cache.example.com",
            "--bucket",
            BUCKET,
            "--region",
            "fra1",
        ])
        .arg("gc")
        .args(extra)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("SPACES_ACCESS_KEY_ID", ACCESS_KEY)
        .env("SPACES_SECRET_ACCESS_KEY", secret)
        .env("SPACES_ENDPOINT", endpoint)
        .env("PROVISION_RETRY_ATTEMPTS", "1")
        .env("PROVISION_HTTP_TIMEOUT_MS", "5000")
        .output()
        .expect("run provision gc");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!all.contains(secret), "the Spaces secret leaked:\n{all}");
    out
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\n--- stdout\n{}--- stderr\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

// ---------------------------------------------------------------------------------------------
// The Nix client
// ---------------------------------------------------------------------------------------------

/// The Nix client as root with no daemon, a chroot store and its own config and cache dirs.
struct Nix {
    dir: PathBuf,
}

impl Nix {
    fn new(dir: &Path, trusted_key: &str) -> Nix {
        fs::create_dir_all(dir.join("conf")).unwrap();
        fs::write(
            dir.join("conf/nix.conf"),
            format!(
                "experimental-features = nix-command\nbuild-users-group =\nsandbox = false\n\
                 substituters =\ntrusted-public-keys = {trusted_key}\n"
            ),
        )
        .unwrap();
        Nix {
            dir: dir.to_owned(),
        }
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("nix")
            .args(args)
            .env("NIX_CONF_DIR", self.dir.join("conf"))
            .env("XDG_CACHE_HOME", self.dir.join("xdg"))
            .output()
            .expect("run nix (scripts/install.sh installs nix-bin)");
        assert!(out.status.success(), "nix {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn store(&self) -> String {
        self.dir.join("store").display().to_string()
    }
}

/// The store path hash of a store path.
fn hash_of(path: &str) -> String {
    path.rsplit('/').next().unwrap()[..32].to_string()
}

/// The bucket's file for a key.
fn file(bucket: &Path, key: &str) -> PathBuf {
    bucket.join(key)
}

/// The NAR key a narinfo names.
fn nar_key(bucket: &Path, hash: &str) -> String {
    let narinfo = fs::read_to_string(file(bucket, &format!("{hash}.narinfo"))).unwrap();
    narinfo
        .lines()
        .find_map(|l| l.strip_prefix("URL: "))
        .unwrap()
        .to_string()
}

/// Sets a key's age.
fn age(bucket: &Path, key: &str, days: u64) {
    let when = SystemTime::now() - Duration::from_secs(days * DAY);
    fs::File::options()
        .write(true)
        .open(file(bucket, key))
        .unwrap_or_else(|e| panic!("{key}: {e}"))
        .set_modified(when)
        .unwrap();
}

/// Every file under the bucket, as keys.
fn keys(bucket: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    walk(bucket, bucket, &mut out);
    out.sort();
    out
}

/// Every narinfo in the bucket has its NAR.
fn assert_whole(bucket: &Path, except: &[String]) {
    for key in keys(bucket) {
        if let Some(hash) = key.strip_suffix(".narinfo") {
            if except.iter().any(|e| e == hash) {
                continue;
            }
            let nar = nar_key(bucket, hash);
            assert!(file(bucket, &nar).is_file(), "{key} has lost {nar}");
        }
    }
}

/// The cache: the seed's closure (busybox <- leaf <- mid <- top), fresh at the top and old below,
/// and more paths made by the Nix client with ages chosen per case.
struct Cache {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    bucket: PathBuf,
    public_key: String,
    top: String,
    closure: Vec<String>,
    fresh_alone: String,
    old_alone: String,
    shared_fresh: String,
    shared_old: String,
    dangling: String,
    in_flight_nar: String,
    orphan_nar: String,
}

fn cache() -> Cache {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let bucket = root.join(BUCKET);
    let meta = tmp.path().join("meta");
    let seed = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scripts/seed-cache.sh"
        ))
        .arg("--meta")
        .arg(&meta)
        .arg(&bucket)
        .env("TMPDIR", tmp.path())
        .output()
        .unwrap();
    assert!(seed.status.success(), "seed-cache.sh: {}", text(&seed));
    let read = |name: &str| {
        fs::read_to_string(meta.join(name))
            .unwrap()
            .trim()
            .to_string()
    };
    let public_key = read("public-key");
    let top = read("top-path");
    let closure: Vec<String> = read("closure").lines().map(str::to_string).collect();

    // More paths, pushed with the same key by the Nix client.
    let nix = Nix::new(&tmp.path().join("pusher"), &public_key);
    let store = nix.store();
    let secret_key = meta.join("secret-key");
    let to = format!(
        "file://{}?secret-key={}",
        bucket.display(),
        secret_key.display()
    );
    let add = |name: &str, content: &str| {
        let src = tmp.path().join(format!("src-{name}"));
        fs::write(&src, content).unwrap();
        let path = nix.run(&[
            "store",
            "add-path",
            "--store",
            &store,
            "--name",
            name,
            src.to_str().unwrap(),
        ]);
        nix.run(&["copy", "--store", &store, "--to", &to, &path]);
        path
    };
    let fresh_alone = add("gc-fresh-alone", "fresh and alone\n");
    let old_alone = add("gc-old-alone", "old and alone\n");
    // Same bytes, two names: two narinfos, one NAR.
    let shared_fresh = add("gc-shared-fresh", "shared bytes\n");
    let shared_old = add("gc-shared-old", "shared bytes\n");
    let dangling = add("gc-dangling", "its NAR goes missing\n");
    let bucket_nar = |path: &str| nar_key(&bucket, &hash_of(path));
    assert_eq!(bucket_nar(&shared_fresh), bucket_nar(&shared_old));
    fs::remove_file(file(&bucket, &bucket_nar(&dangling))).unwrap();

    // A NAR whose narinfo is on its way, and one whose narinfo never came.
    let in_flight_nar = format!("nar/{}.nar.xz", "1".repeat(52));
    let orphan_nar = format!("nar/{}.nar.xz", "2".repeat(52));
    fs::write(file(&bucket, &in_flight_nar), b"in flight").unwrap();
    fs::write(file(&bucket, &orphan_nar), b"orphan").unwrap();

    // Ages: everything 90 days old, then the fresh ones.
    for key in keys(&bucket) {
        age(&bucket, &key, 90);
    }
    for path in [&top, &fresh_alone, &shared_fresh] {
        age(&bucket, &format!("{}.narinfo", hash_of(path)), 1);
    }
    age(&bucket, &in_flight_nar, 0);

    Cache {
        _tmp: tmp,
        root,
        bucket,
        public_key,
        top,
        closure,
        fresh_alone,
        old_alone,
        shared_fresh,
        shared_old,
        dangling,
        in_flight_nar,
        orphan_nar,
    }
}

impl Cache {
    fn narinfo(&self, path: &str) -> String {
        format!("{}.narinfo", hash_of(path))
    }

    /// Copies `paths` out of the bucket into a fresh store that trusts only the cache's key,
    /// then verifies every path of their closures against its hash.
    fn substitute(&self, paths: &[&str]) {
        let client = self._tmp.path().join(format!("client-{}", secret()));
        let nix = Nix::new(&client, &self.public_key);
        let store = nix.store();
        let from = format!("file://{}", self.bucket.display());
        let mut copy = vec!["copy", "--store", &store, "--from", &from];
        copy.extend(paths);
        nix.run(&copy);
        let mut verify = vec!["store", "verify", "--store", &store, "-r"];
        verify.extend(paths);
        nix.run(&verify);
    }
}

fn synthetic_hash(mut i: usize, len: usize, pad: char) -> String {
    const ALPHABET: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut digits = Vec::new();
    loop {
        digits.push(ALPHABET[i % 32] as char);
        i /= 32;
        if i == 0 {
            break;
        }
    }
    let digits: String = digits.into_iter().rev().collect();
    format!("{}{digits}", pad.to_string().repeat(len - digits.len()))
}

fn summary_count(out: &Output) -> u64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("summary:"))
        .unwrap_or_else(|| panic!("no summary: {}", text(out)));
    line.split_whitespace()
        .find_map(|w| w.parse().ok())
        .unwrap()
}

#[test]
fn gc_keeps_every_recent_closure_whole_and_frees_the_rest() {
    let cache = cache();
    let secret = secret();
    let s3 = S3sFs::start(&cache.root, &secret);
    let work = tempfile::tempdir().unwrap();

    // A dry run changes nothing and says what a real run will do.
    let before = keys(&cache.bucket);
    let dry = gc(work.path(), &s3.url(), &secret, &["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    assert_eq!(keys(&cache.bucket), before, "a dry run changed the bucket");
    let dry_stdout = String::from_utf8_lossy(&dry.stdout);
    assert!(
        dry_stdout
            .contains("dangling narinfos (their NAR is missing; they break clients): 1 found"),
        "{}",
        text(&dry)
    );
    // old-alone (narinfo + NAR), shared-old's narinfo, dangling's narinfo, the orphan NAR.
    assert_eq!(summary_count(&dry), 5, "{}", text(&dry));

    let real = gc(work.path(), &s3.url(), &secret, &[]);
    assert!(real.status.success(), "{}", text(&real));
    assert_eq!(summary_count(&real), summary_count(&dry), "{}", text(&real));
    let stderr = String::from_utf8_lossy(&real.stderr);
    assert!(
        stderr.contains("listed ") && stderr.contains("narinfos"),
        "{}",
        text(&real)
    );

    let after = keys(&cache.bucket);
    let has = |key: &str| after.iter().any(|k| k == key);
    // Kept: the closure of the fresh top (its lower paths are 90 days old), the fresh paths,
    // the NAR shared with an expired narinfo, the NAR of a push in flight, nix-cache-info.
    for path in cache
        .closure
        .iter()
        .chain([&cache.fresh_alone, &cache.shared_fresh])
    {
        assert!(has(&cache.narinfo(path)), "lost {path}");
        assert!(
            has(&nar_key(&cache.bucket, &hash_of(path))),
            "lost the NAR of {path}"
        );
    }
    assert!(has(&cache.in_flight_nar));
    assert!(has("nix-cache-info"));
    // Gone: the old path alone, the expired half of the shared pair, the dangling narinfo,
    // the orphan NAR.
    for gone in [
        cache.narinfo(&cache.old_alone),
        cache.narinfo(&cache.shared_old),
        cache.narinfo(&cache.dangling),
        cache.orphan_nar.clone(),
    ] {
        assert!(!has(&gone), "{gone} is still there");
    }
    assert_eq!(after.len(), before.len() - 5);
    assert_whole(&cache.bucket, &[]);

    // Every kept path substitutes, with its whole closure, trusting only the cache's key.
    cache.substitute(&[&cache.top, &cache.fresh_alone, &cache.shared_fresh]);

    // A second run finds nothing more to do.
    let again = gc(work.path(), &s3.url(), &secret, &[]);
    assert!(again.status.success(), "{}", text(&again));
    assert_eq!(summary_count(&again), 0, "{}", text(&again));
}

#[test]
fn a_gc_stopped_half_way_leaves_a_whole_cache_and_the_next_run_finishes() {
    let cache = cache();
    // Many old paths to delete, so the run is still deleting when the origin goes away.
    let many = 1500;
    for i in 0..many {
        let hash = synthetic_hash(i, 32, '0');
        let nar = format!("nar/{}.nar", synthetic_hash(i, 52, '0'));
        let narinfo = format!(
            "StorePath: /nix/store/{hash}-old-{i}\nURL: {nar}\nCompression: none\n\
             NarHash: sha256:{}\nNarSize: 1\nReferences: \n",
            synthetic_hash(i, 52, 'y')
        );
        fs::write(file(&cache.bucket, &format!("{hash}.narinfo")), narinfo).unwrap();
        fs::write(file(&cache.bucket, &nar), b"x").unwrap();
        age(&cache.bucket, &format!("{hash}.narinfo"), 90);
        age(&cache.bucket, &nar, 90);
    }
    let secret = secret();
    let work = tempfile::tempdir().unwrap();
    let before = keys(&cache.bucket).len();
    let s3 = S3sFs::start(&cache.root, &secret);
    let dry = gc(work.path(), &s3.url(), &secret, &["--dry-run"]);
    assert!(dry.status.success(), "{}", text(&dry));
    let doomed = summary_count(&dry) as usize;
    assert!(doomed >= 2 * many, "{}", text(&dry));
    let mut run = Command::new(env!("CARGO_BIN_EXE_provision"))
        .current_dir(work.path())
        .args([
            "--hostname",
            "cache.example.com",
            "--bucket",
            BUCKET,
            "--region",
            "fra1",
        ])
        .args(["gc", "--concurrency", "1"])
        .env("SPACES_ACCESS_KEY_ID", ACCESS_KEY)
        .env("SPACES_SECRET_ACCESS_KEY", &secret)
        .env("SPACES_ENDPOINT", s3.url())
        .env("PROVISION_RETRY_ATTEMPTS", "1")
        .env("PROVISION_HTTP_TIMEOUT_MS", "5000")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until deleting has begun, then take the origin away.
    let deadline = Instant::now() + Duration::from_secs(120);
    while keys(&cache.bucket).len() > before - 20 {
        assert!(
            run.try_wait().unwrap().is_none(),
            "gc finished before it could be stopped"
        );
        assert!(Instant::now() < deadline, "gc deleted nothing in 120 s");
        std::thread::sleep(Duration::from_millis(5));
    }
    drop(s3);
    let status = run.wait().unwrap();
    assert!(!status.success(), "gc without its origin must fail");
    let left = keys(&cache.bucket).len();
    assert!(left > before - doomed, "the run was not stopped half way");
    assert_whole(&cache.bucket, &[hash_of(&cache.dangling)]);
    cache.substitute(&[&cache.top]);

    // The next run finishes the job.
    let s3 = S3sFs::start(&cache.root, &secret);
    let out = gc(work.path(), &s3.url(), &secret, &[]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(keys(&cache.bucket).len(), before - doomed);
    assert_whole(&cache.bucket, &[]);
    cache.substitute(&[&cache.top, &cache.fresh_alone, &cache.shared_fresh]);
}
