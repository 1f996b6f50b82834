//! Pushing through the Worker end to end, with real processes on 127.0.0.1: the built Worker
//! under workerd (Miniflare), `s3s-fs` verifying SigV4 behind a proxy that counts origin
//! requests, and Nix 2.8 pushing with `nix copy --to http://…` and a token in a netrc file.
//!
//! - `nix_copy_to_the_worker_then_from_it_with_only_its_key`: an unsigned closure pushed with a
//!   `write` token; a fresh store that trusts only the Worker's key substitutes all of it.
//! - `refused_credentials_reach_no_origin_put`: no token, a bad signature, `alg: none`, an
//!   expired and a `read` token: 401/403 and not one PUT at the origin.
//! - `bad_uploads_are_refused_and_store_nothing`: narinfo without its NAR, a NAR that does not
//!   hash to its name, a body over the limit, no `Content-Length`, bad narinfo fields.
//! - `a_private_cache_serves_only_token_holders`: 401 also for objects the edge holds;
//!   `nix copy --from` with a `read` token works.
//! - `a_remembered_miss_is_forgotten_by_a_push`.
//! - `an_origin_that_is_down_or_refuses_writes_is_a_502_naming_it`.
//! - `a_corrupt_nar_an_origin_took_is_deleted_again`: an origin that does not check the payload
//!   hash stores what it is sent; the Worker's own hash makes it a 400 and deletes it.
//! - `nix_pushes_nar_listings_too`: `write-nar-listing=true`, listings stored and served back.
//!
//! Every test checks that no token, `TOKEN_SECRET` or `SIGNING_KEY` shows in any response or
//! in the Worker's log.

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use nix_spaces_cache::token::{mint, Claims, Scope, TokenSecret};
use support::http::Response;
use support::upload::{self, Body};
use support::{
    netrc_file, origin_requests_with_method, random_hex, seed, temp_dir, unsigned_copy, NixEnv,
    S3Origin, Seed, Worker,
};

const BUCKET: &str = "nix-cache";

/// Secrets of one stack: a random `TOKEN_SECRET` and a fresh Nix signing key.
struct Secrets {
    token_secret: String,
    signing_key: String,
    public_key: String,
}

impl Secrets {
    fn new() -> Secrets {
        let env = NixEnv::new();
        let out = env
            .nix(&["key", "generate-secret", "--key-name", "push-test-1"])
            .output()
            .expect("nix key generate-secret");
        assert!(out.status.success(), "nix key generate-secret failed");
        let signing_key = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let mut convert = env
            .nix(&["key", "convert-secret-to-public"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("nix key convert-secret-to-public");
        use std::io::Write;
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

    fn secret(&self) -> TokenSecret {
        TokenSecret::new(&self.token_secret)
    }

    fn token(&self, scope: Scope, valid_for: i64) -> String {
        let now = now();
        mint(
            &Claims {
                sub: "e2e".into(),
                scope,
                exp: (now as i64 + valid_for) as u64,
                nbf: None,
                iat: Some(now),
            },
            &self.secret(),
        )
    }

    fn bindings(&self, origin: &S3Origin, extra: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut b = origin.bindings();
        b.push(("TOKEN_SECRET".into(), self.token_secret.clone()));
        b.push(("SIGNING_KEY".into(), self.signing_key.clone()));
        for (k, v) in extra {
            b.push((k.to_string(), v.to_string()));
        }
        b
    }

    /// No token, secret or signing key in any of `responses` or in the Worker's log.
    fn assert_kept(&self, tokens: &[&str], responses: &[Response], worker: &Worker) {
        let key_part = self.signing_key.split_once(':').unwrap().1;
        let mut secrets: Vec<&str> = vec![&self.token_secret, key_part];
        secrets.extend_from_slice(tokens);
        let log = worker.process.log_tail();
        for secret in &secrets {
            // Tokens are long; their signature part alone must not show either.
            let sig = secret
                .rsplit('.')
                .next()
                .filter(|s| s.len() >= 16)
                .unwrap_or(secret);
            for r in responses {
                let raw = r.raw_text();
                assert!(
                    !raw.contains(secret) && !raw.contains(sig),
                    "a response carries a secret"
                );
            }
            assert!(
                !log.contains(secret) && !log.contains(sig),
                "the Worker's log carries a secret"
            );
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn basic(token: &str) -> String {
    use base64::engine::general_purpose::STANDARD;
    format!("Basic {}", STANDARD.encode(format!("nix:{token}")))
}

fn put(
    worker: &Worker,
    target: &str,
    auth: Option<&str>,
    headers: &[(&str, &str)],
    body: Body,
) -> Response {
    let mut all: Vec<(&str, &str)> = headers.to_vec();
    if let Some(auth) = auth {
        all.push(("Authorization", auth));
    }
    upload::send(worker.port, "PUT", target, &all, body)
}

fn get(worker: &Worker, target: &str, auth: Option<&str>) -> Response {
    let headers: Vec<(&str, &str)> = auth.map(|a| vec![("Authorization", a)]).unwrap_or_default();
    worker.request("GET", target, &headers)
}

fn assert_status(r: &Response, status: u16, what: &str) {
    assert_eq!(
        r.status,
        status,
        "{what}: status {} (body: {:?})",
        r.status,
        r.text().chars().take(300).collect::<String>()
    );
}

/// The files in an empty bucket directory, relative to it.
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

/// An unsigned copy of the seed imported into a fresh store: what a builder pushes.
fn builder_store(seed: &Seed) -> (NixEnv, tempfile::TempDir) {
    let unsigned = unsigned_copy(seed);
    let env = NixEnv::new();
    let from = format!("file://{}", unsigned.path().display());
    let (ok, _, err) = env.run(&["copy", "--from", &from, "--no-check-sigs", &seed.top_path]);
    assert!(ok, "importing the unsigned closure failed: {err}");
    (env, unsigned)
}

fn signatures_of(env: &NixEnv, path: &str) -> String {
    let (ok, out, err) = env.run(&["path-info", "--sigs", path]);
    assert!(ok, "nix path-info --sigs: {err}");
    out
}

#[test]
fn nix_copy_to_the_worker_then_from_it_with_only_its_key() {
    let seed = seed();
    let secrets = Secrets::new();
    let bucket = temp_dir("bucket-");
    let origin = S3Origin::start(bucket.path(), BUCKET);
    let worker = Worker::start(&secrets.bindings(&origin, &[]));
    let write = secrets.token(Scope::Write, 3600);
    let (builder, _unsigned) = builder_store(seed);
    assert!(
        !signatures_of(&builder, &seed.top_path).contains(':'),
        "the builder's paths should be unsigned"
    );

    let netrc_dir = temp_dir("netrc-");
    let netrc = netrc_file(netrc_dir.path(), &write);
    let (ok, _, err) = builder.run(&[
        "copy",
        "--to",
        &worker.url(),
        "--option",
        "netrc-file",
        netrc.to_str().unwrap(),
        &seed.top_path,
    ]);
    assert!(
        ok,
        "nix copy --to the Worker failed: {err}\n{}",
        worker.process.log_tail()
    );

    // The bucket holds each path's narinfo and NAR, and each narinfo carries the Worker's Sig.
    let stored = files_in(bucket.path());
    for path in &seed.closure {
        let name = format!("{}.narinfo", Seed::hash_of(path));
        assert!(
            stored.contains(&name),
            "{name} not in the bucket: {stored:?}"
        );
        let text = fs::read_to_string(bucket.path().join(&name)).unwrap();
        assert!(
            text.contains("Sig: push-test-1:"),
            "{name} is not signed:\n{text}"
        );
        let url = text.lines().find_map(|l| l.strip_prefix("URL: ")).unwrap();
        assert!(stored.contains(&url.to_string()), "{url} not in the bucket");
    }
    let puts = origin_requests_with_method(&origin, "PUT");
    assert_eq!(
        puts.len(),
        2 * seed.closure.len(),
        "one PUT per NAR and narinfo"
    );
    assert!(
        puts.iter().all(|p| p
            .header("authorization")
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256"))),
        "every PUT is signed with the Spaces key, never the client's token"
    );

    // A fresh store that trusts only the Worker's key substitutes the whole closure.
    let fresh = NixEnv::new();
    let (ok, _, err) = fresh.run(&[
        "copy",
        "--from",
        &worker.url(),
        "--option",
        "require-sigs",
        "true",
        "--option",
        "trusted-public-keys",
        &secrets.public_key,
        &seed.top_path,
    ]);
    assert!(ok, "nix copy --from the Worker failed: {err}");
    let (ok, out, err) = fresh.run(&["path-info", "-r", &seed.top_path]);
    assert!(ok, "{err}");
    let mut got: Vec<&str> = out.lines().map(str::trim).collect();
    got.sort();
    let mut want: Vec<&str> = seed.closure.iter().map(String::as_str).collect();
    want.sort();
    assert_eq!(got, want);
    let (ok, _, err) = fresh.run(&[
        "store",
        "verify",
        "--sigs-needed",
        "1",
        "--option",
        "trusted-public-keys",
        &secrets.public_key,
        "-r",
        &seed.top_path,
    ]);
    assert!(ok, "nix store verify: {err}");

    // Pushing again writes nothing new: every path is there already.
    let before = origin_requests_with_method(&origin, "PUT").len();
    let (ok, _, err) = builder.run(&[
        "copy",
        "--to",
        &worker.url(),
        "--option",
        "netrc-file",
        netrc.to_str().unwrap(),
        &seed.top_path,
    ]);
    assert!(ok, "{err}");
    assert_eq!(origin_requests_with_method(&origin, "PUT").len(), before);

    // The page at / shows the Worker's public key.
    let page = get(&worker, "/", None);
    assert_status(&page, 200, "/");
    assert!(
        page.text().contains(&secrets.public_key),
        "the public key is not on the page"
    );
    secrets.assert_kept(&[&write], &[page], &worker);
}

#[test]
fn refused_credentials_reach_no_origin_put() {
    let seed = seed();
    let secrets = Secrets::new();
    let bucket = temp_dir("bucket-");
    let origin = S3Origin::start(bucket.path(), BUCKET);
    let worker = Worker::start(&secrets.bindings(&origin, &[]));
    let (builder, _unsigned) = builder_store(seed);

    let good = secrets.token(Scope::Write, 3600);
    let (head, rest) = good.split_once('.').unwrap();
    let (payload, _) = rest.split_once('.').unwrap();
    let other_secret = mint(
        &Claims {
            sub: "e2e".into(),
            scope: Scope::Write,
            exp: now() + 3600,
            nbf: None,
            iat: None,
        },
        &TokenSecret::new("not the Worker's secret, but long enough"),
    );
    let bad_signature = format!(
        "{head}.{payload}.{}",
        other_secret.rsplit('.').next().unwrap()
    );
    let alg_none = format!(
        "{}.{payload}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    let expired = secrets.token(Scope::Write, -10);
    let read_only = secrets.token(Scope::Read, 3600);
    let cases: [(&str, Option<&str>, u16); 5] = [
        ("no token", None, 401),
        ("a bad signature", Some(&bad_signature), 401),
        ("alg none", Some(&alg_none), 401),
        ("an expired token", Some(&expired), 401),
        ("a read-only token", Some(&read_only), 403),
    ];
    let leaf = seed
        .closure
        .iter()
        .find(|p| p.ends_with("-seed-leaf"))
        .unwrap();
    let narinfo = fs::read(seed.narinfo_file(leaf)).unwrap();
    let target = format!("/{}.narinfo", Seed::hash_of(leaf));
    let netrc_dir = temp_dir("netrc-");
    let mut responses = Vec::new();
    for (what, token, status) in cases {
        // Nix itself: the push fails.
        let netrc = netrc_file(netrc_dir.path(), token.unwrap_or("nothing"));
        let mut args = vec!["copy", "--to"];
        let url = worker.url();
        args.push(&url);
        if token.is_some() {
            args.extend(["--option", "netrc-file", netrc.to_str().unwrap()]);
        }
        args.push(&seed.top_path);
        let (ok, _, err) = builder.run(&args);
        assert!(!ok, "{what}: nix copy --to succeeded");
        assert!(
            err.contains(&status.to_string()),
            "{what}: Nix does not report {status}: {err}"
        );
        // By hand: the status, the challenge, and a body that says nothing about why.
        for auth in token
            .map(|t| vec![bearer(t), basic(t)])
            .unwrap_or(vec![String::new()])
        {
            let auth = (!auth.is_empty()).then_some(auth.as_str());
            let r = put(&worker, &target, auth, &[], Body::Bytes(&narinfo));
            assert_status(&r, status, what);
            if status == 401 {
                assert_eq!(
                    r.header("www-authenticate"),
                    Some(format!("Basic realm=\"127.0.0.1:{}\"", worker.port).as_str()),
                    "{what}"
                );
                assert!(
                    r.text().starts_with("authentication required"),
                    "{what}: {}",
                    r.text()
                );
            } else {
                assert!(r.header("www-authenticate").is_none());
            }
            responses.push(r);
        }
    }
    assert_eq!(
        origin_requests_with_method(&origin, "PUT").len(),
        0,
        "a refused push reached the origin"
    );
    assert!(files_in(bucket.path()).is_empty(), "something was stored");

    // Without TOKEN_SECRET the Worker takes no uploads at all.
    let read_only_worker = Worker::start(&origin.bindings());
    let r = put(
        &read_only_worker,
        &target,
        Some(&bearer(&good)),
        &[],
        Body::Bytes(&narinfo),
    );
    assert_status(&r, 405, "PUT without TOKEN_SECRET");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = put(&worker, "/", Some(&bearer(&good)), &[], Body::Bytes(b"x"));
    assert_status(&r, 405, "PUT /");
    assert_eq!(r.header("allow"), Some("GET, HEAD"));
    let r = worker.request("DELETE", &target, &[("Authorization", &bearer(&good))]);
    assert_status(&r, 405, "DELETE");
    assert_eq!(r.header("allow"), Some("GET, HEAD, PUT"));
    assert_eq!(origin_requests_with_method(&origin, "PUT").len(), 0);
    let tokens = [
        good.as_str(),
        &bad_signature,
        &alg_none,
        &expired,
        &read_only,
    ];
    secrets.assert_kept(&tokens, &responses, &worker);
}

#[test]
fn bad_uploads_are_refused_and_store_nothing() {
    let seed = seed();
    let secrets = Secrets::new();
    let bucket = temp_dir("bucket-");
    let origin = S3Origin::start(bucket.path(), BUCKET);
    let limit = 1_000_000u64;
    let worker = Worker::start(&secrets.bindings(&origin, &[("MAX_UPLOAD_BYTES", "1000000")]));
    let token = secrets.token(Scope::Write, 3600);
    let auth = bearer(&token);
    let auth = Some(auth.as_str());
    let mut responses = Vec::new();
    let mut checks = support::Checks::new();

    let top = &seed.top_path;
    let info = seed.narinfo(top);
    let narinfo_text = fs::read_to_string(seed.narinfo_file(top)).unwrap();
    let narinfo_target = format!("/{}.narinfo", Seed::hash_of(top));
    let nar_target = format!("/{}", info.url);
    let nar = fs::read(seed.cache.join(&info.url)).unwrap();

    checks.check("a narinfo whose NAR was never uploaded is 409", || {
        let r = put(
            &worker,
            &narinfo_target,
            auth,
            &[],
            Body::Bytes(narinfo_text.as_bytes()),
        );
        assert_status(&r, 409, "narinfo without NAR");
        assert!(r.text().contains("upload the NAR first"), "{}", r.text());
        responses.push(r);
    });

    checks.check(
        "a NAR whose body does not match its name is refused by the origin",
        || {
            let mut wrong = nar.clone();
            let last = wrong.len() - 1;
            wrong[last] ^= 0xff;
            let before = origin_requests_with_method(&origin, "PUT").len();
            let r = put(&worker, &nar_target, auth, &[], Body::Bytes(&wrong));
            // The Worker signs the PUT with the SHA-256 the name promises (Spaces and S3 answer
            // a mismatch with 400 XAmzContentSHA256Mismatch; s3s-fs 0.14.1 with 500
            // InternalError) and hashes the bytes itself as they pass: the client's 400 either
            // way, and the origin keeps nothing (checked below).
            assert_status(&r, 400, "NAR body mismatch");
            assert_eq!(
                r.text(),
                "NAR body does not hash to its file name: nothing stored\n"
            );
            let puts = origin_requests_with_method(&origin, "PUT");
            assert_eq!(puts.len(), before + 1);
            let sent = puts.last().unwrap();
            let want = support::sha256_hex(&nar);
            assert_eq!(sent.header("x-amz-content-sha256"), Some(want.as_str()));
            assert_eq!(
                sent.header("content-length"),
                Some(nar.len().to_string().as_str()),
                "the origin gets a Content-Length"
            );
            responses.push(r);
        },
    );

    checks.check(
        "a body over MAX_UPLOAD_BYTES is 413 naming how to push it",
        || {
            let big = vec![7u8; limit as usize + 1];
            let r = put(&worker, &nar_target, auth, &[], Body::Bytes(&big));
            assert_status(&r, 413, "over the limit");
            assert!(r.text().contains("nix copy --to s3://"), "{}", r.text());
            responses.push(r);
        },
    );

    checks.check("no Content-Length (chunked) is 411", || {
        let r = put(&worker, &nar_target, auth, &[], Body::Chunked(&nar));
        assert_status(&r, 411, "chunked");
        responses.push(r);
    });

    checks.check(
        "a body shorter than its Content-Length stores nothing",
        || {
            let r = put(
                &worker,
                &nar_target,
                auth,
                &[],
                Body::Short {
                    declared: nar.len() as u64,
                    sent: &nar[..nar.len() / 2],
                },
            );
            assert!(
                r.status == 0 || r.status >= 400,
                "a short body got {}",
                r.status
            );
            responses.push(r);
        },
    );

    checks.check("narinfos with a bad field are 400 naming it", || {
        let cases = [
            (
                "StorePath",
                narinfo_text.replace("StorePath: /nix/store/", "StorePath: /gnu/store/"),
            ),
            ("URL", narinfo_text.replace("URL: nar/", "URL: log/")),
            ("NarSize", narinfo_text.replace("NarSize: ", "NarSize: x")),
            ("Evil", format!("{narinfo_text}Evil: 1\n")),
            (
                "References",
                narinfo_text.replace("References: ", "References: /nix/store/"),
            ),
        ];
        for (field, text) in cases {
            let r = put(
                &worker,
                &narinfo_target,
                auth,
                &[],
                Body::Bytes(text.as_bytes()),
            );
            assert_status(&r, 400, field);
            assert!(r.text().contains(field), "{field}: {}", r.text());
            responses.push(r);
        }
        // A narinfo put at another path's hash.
        let elsewhere = format!("/{}.narinfo", "0".repeat(32));
        let r = put(
            &worker,
            &elsewhere,
            auth,
            &[],
            Body::Bytes(narinfo_text.as_bytes()),
        );
        assert_status(&r, 400, "narinfo at another hash");
        responses.push(r);
    });

    checks.check(
        "a narinfo in an encoding the Worker cannot read is 415",
        || {
            let r = put(
                &worker,
                &narinfo_target,
                auth,
                &[("Content-Encoding", "xz")],
                Body::Bytes(narinfo_text.as_bytes()),
            );
            assert_status(&r, 415, "xz narinfo");
            responses.push(r);
        },
    );

    checks.check("nothing above reached the bucket", || {
        assert!(
            files_in(bucket.path()).is_empty(),
            "stored: {:?}",
            files_in(bucket.path())
        );
    });

    checks.check(
        "PUT /nix-cache-info with our StoreDir is 204, another is 400",
        || {
            let r = put(
                &worker,
                "/nix-cache-info",
                auth,
                &[],
                Body::Bytes(b"StoreDir: /nix/store\n"),
            );
            assert_status(&r, 204, "matching nix-cache-info");
            let r = put(
                &worker,
                "/nix-cache-info",
                auth,
                &[],
                Body::Bytes(b"StoreDir: /gnu/store\n"),
            );
            assert_status(&r, 400, "other StoreDir");
            assert!(files_in(bucket.path()).is_empty());
        },
    );

    checks.check(
        "the NAR, then its narinfo (gzip-encoded), are stored and served",
        || {
            let r = put(&worker, &nar_target, auth, &[], Body::Bytes(&nar));
            assert_status(&r, 200, "NAR");
            assert_eq!(fs::read(bucket.path().join(&info.url)).unwrap(), nar);
            let r = put(&worker, &nar_target, auth, &[], Body::Bytes(&nar));
            assert_status(&r, 200, "the same NAR again");
            assert!(r.text().contains("already"), "{}", r.text());
            let wrong_size = narinfo_text.replace(
                &format!("FileSize: {}", info.file_size),
                &format!("FileSize: {}", info.file_size + 1),
            );
            let r = put(
                &worker,
                &narinfo_target,
                auth,
                &[],
                Body::Bytes(wrong_size.as_bytes()),
            );
            assert_status(&r, 409, "narinfo with another FileSize than its NAR");
            assert!(r.text().contains("FileSize says"), "{}", r.text());
            let mut gz = Command::new("gzip")
                .arg("-c")
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            use std::io::Write;
            gz.stdin
                .take()
                .unwrap()
                .write_all(narinfo_text.as_bytes())
                .unwrap();
            let gzipped = gz.wait_with_output().unwrap().stdout;
            let r = put(
                &worker,
                &narinfo_target,
                auth,
                &[("Content-Encoding", "gzip")],
                Body::Bytes(&gzipped),
            );
            assert_status(&r, 200, "gzip narinfo");
            let stored = fs::read_to_string(
                bucket
                    .path()
                    .join(format!("{}.narinfo", Seed::hash_of(top))),
            )
            .unwrap();
            assert!(
                stored.starts_with(&narinfo_text),
                "the narinfo was changed:\n{stored}"
            );
            // The seed's own signature is kept, the Worker's added once.
            assert_eq!(stored.matches("Sig: ").count(), 2, "{stored}");
            assert_eq!(stored.matches("Sig: push-test-1:").count(), 1);
            let r = get(&worker, &narinfo_target, None);
            assert_status(&r, 200, "GET the pushed narinfo");
            assert_eq!(r.text(), stored);
        },
    );

    checks.check(
        "a listing keeps its Content-Type and Content-Encoding",
        || {
            let target = format!("/{}.ls", Seed::hash_of(top));
            let r = put(
                &worker,
                &target,
                auth,
                &[
                    ("Content-Type", "application/json"),
                    ("Content-Encoding", "br"),
                ],
                Body::Bytes(b"not really brotli"),
            );
            assert_status(&r, 200, "listing");
            let requests = origin_requests_with_method(&origin, "PUT");
            let sent = requests.iter().find(|p| p.target.ends_with(".ls")).unwrap();
            assert_eq!(sent.header("content-encoding"), Some("br"));
            assert_eq!(sent.header("content-type"), Some("application/json"));
            assert_eq!(
                fs::read(bucket.path().join(format!("{}.ls", Seed::hash_of(top)))).unwrap(),
                b"not really brotli"
            );
        },
    );

    let tokens = [token.as_str()];
    checks.finish(|| worker.process.log_tail());
    secrets.assert_kept(&tokens, &responses, &worker);
}

#[test]
fn a_private_cache_serves_only_token_holders() {
    let seed = seed();
    let secrets = Secrets::new();
    let origin = S3Origin::start(&seed.cache, BUCKET);
    let worker = Worker::start(&secrets.bindings(&origin, &[("PRIVATE", "1")]));
    let read = secrets.token(Scope::Read, 3600);
    let read_auth = basic(&read);
    let top = &seed.top_path;
    let target = format!("/{}.narinfo", Seed::hash_of(top));

    // A reader fetches it; the edge keeps it.
    let r = get(&worker, &target, Some(&read_auth));
    assert_status(&r, 200, "a reader");
    assert_eq!(
        r.header("cache-control"),
        Some("private, no-store"),
        "a private object must not be kept by shared caches"
    );
    let deadline = Instant::now() + Duration::from_secs(15);
    while worker
        .request("HEAD", &target, &[("Authorization", &read_auth)])
        .header("x-cache")
        != Some("HIT")
    {
        assert!(Instant::now() < deadline, "never stored at the edge");
        thread::sleep(Duration::from_millis(200));
    }
    let hit = get(&worker, &target, Some(&read_auth));
    assert_eq!(hit.header("x-cache"), Some("HIT"));
    assert_eq!(hit.header("cache-control"), Some("private, no-store"));
    let info = get(&worker, "/nix-cache-info", Some(&read_auth));
    assert_status(&info, 200, "nix-cache-info for a reader");
    assert_eq!(info.header("cache-control"), Some("private, no-store"));
    // Anonymous: 401 even though the edge holds it, and the origin is not asked.
    let before = origin.proxy.count();
    let mut responses = Vec::new();
    for path in [
        target.as_str(),
        "/nix-cache-info",
        &format!("/{}", seed.narinfo(top).url),
    ] {
        let r = get(&worker, path, None);
        assert_status(&r, 401, path);
        assert!(r.header("www-authenticate").is_some());
        assert!(
            !r.text().contains("StorePath"),
            "{path}: the body leaks the object"
        );
        responses.push(r);
        let r = worker.request("HEAD", path, &[]);
        assert_status(&r, 401, path);
        let r = get(&worker, path, Some(&bearer(&read[..read.len() - 2])));
        assert_status(&r, 401, "a damaged token");
    }
    assert_eq!(
        origin.proxy.count(),
        before,
        "an anonymous read reached the origin"
    );
    // The page at / is open and says how to get in.
    let page = get(&worker, "/", None);
    assert_status(&page, 200, "/");
    assert!(page.text().contains("private"));
    assert!(page.text().contains("machine 127.0.0.1 login nix password"));

    // Nix with a read token in netrc substitutes the closure.
    let netrc_dir = temp_dir("netrc-");
    let netrc = netrc_file(netrc_dir.path(), &read);
    let fresh = NixEnv::new();
    let (ok, _, err) = fresh.run(&[
        "copy",
        "--from",
        &worker.url(),
        "--option",
        "netrc-file",
        netrc.to_str().unwrap(),
        "--option",
        "trusted-public-keys",
        &seed.public_key,
        top,
    ]);
    assert!(
        ok,
        "nix copy --from a private cache with a read token: {err}"
    );
    // And without one it cannot.
    let stranger = NixEnv::new();
    let (ok, _, _) = stranger.run(&[
        "copy",
        "--from",
        &worker.url(),
        "--option",
        "trusted-public-keys",
        &seed.public_key,
        top,
    ]);
    assert!(
        !ok,
        "nix copy --from a private cache without a token succeeded"
    );
    responses.push(page);
    secrets.assert_kept(&[&read], &responses, &worker);
}

#[test]
fn a_remembered_miss_is_forgotten_by_a_push() {
    let seed = seed();
    let secrets = Secrets::new();
    let bucket = temp_dir("bucket-");
    let origin = S3Origin::start(bucket.path(), BUCKET);
    let worker = Worker::start(&secrets.bindings(&origin, &[]));
    let write = secrets.token(Scope::Write, 3600);
    let auth = bearer(&write);
    let leaf = seed
        .closure
        .iter()
        .find(|p| p.ends_with("-seed-leaf"))
        .unwrap();
    let info = seed.narinfo(leaf);
    let target = format!("/{}.narinfo", Seed::hash_of(leaf));
    let nar_target = format!("/{}", info.url);

    // A miss, remembered at the edge (the second one never reaches the origin).
    assert_status(&get(&worker, &target, None), 404, "first miss");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let before = origin.proxy.count();
        let r = get(&worker, &target, None);
        assert_status(&r, 404, "remembered miss");
        if r.header("x-cache") == Some("HIT") && origin.proxy.count() == before {
            break;
        }
        assert!(Instant::now() < deadline, "the miss was never remembered");
        thread::sleep(Duration::from_millis(200));
    }
    // The push.
    let nar = fs::read(seed.cache.join(&info.url)).unwrap();
    assert_status(
        &put(&worker, &nar_target, Some(&auth), &[], Body::Bytes(&nar)),
        200,
        "NAR",
    );
    let text = fs::read(seed.narinfo_file(leaf)).unwrap();
    assert_status(
        &put(&worker, &target, Some(&auth), &[], Body::Bytes(&text)),
        200,
        "narinfo",
    );
    // At once: the narinfo and its NAR.
    let r = get(&worker, &target, None);
    assert_status(&r, 200, "read after the push");
    assert_eq!(r.header("x-cache"), Some("MISS"));
    assert!(r
        .text()
        .starts_with(&String::from_utf8_lossy(&text).to_string()));
    assert_status(&get(&worker, &nar_target, None), 200, "its NAR");
    // The log names who pushed (the token's sub), never the token.
    let log = worker.process.log_tail();
    assert!(
        log.contains(&format!("PUT {target} by \"e2e\": 200")),
        "no log line for the push:\n{log}"
    );
    secrets.assert_kept(&[&write], &[r], &worker);
}

#[test]
fn an_origin_that_is_down_or_refuses_writes_is_a_502_naming_it() {
    let seed = seed();
    let secrets = Secrets::new();
    let top = &seed.top_path;
    let info = seed.narinfo(top);
    let nar = fs::read(seed.cache.join(&info.url)).unwrap();
    let narinfo = fs::read(seed.narinfo_file(top)).unwrap();
    let nar_target = format!("/{}", info.url);
    let narinfo_target = format!("/{}.narinfo", Seed::hash_of(top));
    let token = secrets.token(Scope::Write, 3600);
    let auth = bearer(&token);
    let bindings_for = |endpoint: String| {
        let mut b = vec![
            ("SPACES_ENDPOINT".to_string(), endpoint),
            ("SPACES_BUCKET".into(), BUCKET.into()),
            ("SPACES_REGION".into(), "us-east-1".into()),
            ("SPACES_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into()),
            ("SPACES_SECRET_ACCESS_KEY".into(), random_hex(20)),
        ];
        b.push(("TOKEN_SECRET".into(), secrets.token_secret.clone()));
        b.push(("SIGNING_KEY".into(), secrets.signing_key.clone()));
        b
    };
    let mut responses = Vec::new();

    // Down: nothing listens.
    let down = Worker::start(&bindings_for(format!(
        "http://127.0.0.1:{}",
        support::closed_port()
    )));
    for (target, body) in [(&nar_target, &nar), (&narinfo_target, &narinfo)] {
        let r = put(&down, target, Some(&auth), &[], Body::Bytes(body));
        assert_status(&r, 502, target);
        assert_eq!(r.text(), "origin unreachable\n");
        responses.push(r);
    }
    secrets.assert_kept(&[&token], &responses, &down);

    // Up, but refusing writes as a read-only key's bucket does, or failing.
    let access_denied = br#"<?xml version="1.0"?><Error><Code>AccessDenied</Code></Error>"#;
    let unavailable = b"<html>busy</html>";
    let scripted = support::ScriptedOrigin::start(vec![
        (
            info.url.clone(),
            support::raw_answer(
                "403 Forbidden",
                &[("content-length", &access_denied.len().to_string())],
                access_denied,
            ),
        ),
        (
            format!("{}.ls", Seed::hash_of(top)),
            support::raw_answer(
                "503 Service Unavailable",
                &[("content-length", &unavailable.len().to_string())],
                unavailable,
            ),
        ),
    ]);
    let refusing = Worker::start(&bindings_for(scripted.url()));
    let r = put(&refusing, &nar_target, Some(&auth), &[], Body::Bytes(&nar));
    assert_status(&r, 502, "a NAR PUT refused by the origin");
    assert!(
        r.text().starts_with("origin refused access"),
        "{}",
        r.text()
    );
    responses.push(r);
    let ls = format!("/{}.ls", Seed::hash_of(top));
    let r = put(&refusing, &ls, Some(&auth), &[], Body::Bytes(b"{}"));
    assert_status(&r, 502, "a listing PUT to a failing origin");
    assert_eq!(r.text(), "origin answered 503\n");
    responses.push(r);
    // Nothing the client sent reached the origin in its own name.
    for request in scripted.requests() {
        assert!(
            request
                .header("authorization")
                .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256")),
            "{} {} without the Worker's signature",
            request.method,
            request.target
        );
    }
    secrets.assert_kept(&[&token], &responses, &refusing);
}

#[test]
fn a_corrupt_nar_an_origin_took_is_deleted_again() {
    let seed = seed();
    let secrets = Secrets::new();
    let info = seed.narinfo(&seed.top_path);
    let nar = fs::read(seed.cache.join(&info.url)).unwrap();
    let nar_target = format!("/{}", info.url);
    let token = secrets.token(Scope::Write, 3600);
    let auth = bearer(&token);
    // Takes every request for the NAR's key (HEAD, PUT, DELETE) after reading its body whole,
    // and checks no hash: what an origin that ignores `x-amz-content-sha256` does.
    let origin = support::ScriptedOrigin::start_reading(vec![(
        info.url.clone(),
        support::raw_answer("200 OK", &[("content-length", "0")], b""),
    )]);
    let worker = Worker::start(&[
        ("SPACES_ENDPOINT".to_string(), origin.url()),
        ("SPACES_BUCKET".into(), BUCKET.into()),
        ("SPACES_REGION".into(), "us-east-1".into()),
        ("SPACES_ACCESS_KEY_ID".into(), "AKIDEXAMPLE".into()),
        ("SPACES_SECRET_ACCESS_KEY".into(), random_hex(20)),
        ("TOKEN_SECRET".into(), secrets.token_secret.clone()),
    ]);
    let methods = || -> Vec<String> {
        origin
            .requests()
            .into_iter()
            .filter(|r| r.target.ends_with(&info.url))
            .map(|r| r.method)
            .collect()
    };

    let mut wrong = nar.clone();
    wrong[0] ^= 0xff;
    let r = put(&worker, &nar_target, Some(&auth), &[], Body::Bytes(&wrong));
    assert_status(&r, 400, "a corrupt NAR the origin took");
    assert_eq!(
        r.text(),
        "NAR body does not hash to its file name: nothing stored\n"
    );
    assert_eq!(methods(), ["HEAD", "PUT", "DELETE"], "what the origin saw");

    let r = put(&worker, &nar_target, Some(&auth), &[], Body::Bytes(&nar));
    assert_status(&r, 200, "the NAR as its name promises");
    assert_eq!(
        methods(),
        ["HEAD", "PUT", "DELETE", "HEAD", "PUT"],
        "a good NAR is not deleted"
    );
    secrets.assert_kept(&[&token], &[r], &worker);
}

#[test]
fn nix_pushes_nar_listings_too() {
    // Nix 2.8 sends every file of an http:// store uncompressed, whatever its
    // narinfo-compression or ls-compression say (seen on the wire); encoded uploads are
    // checked by hand in `bad_uploads_are_refused_and_store_nothing`.
    let seed = seed();
    let secrets = Secrets::new();
    let bucket = temp_dir("bucket-");
    let origin = S3Origin::start(bucket.path(), BUCKET);
    let worker = Worker::start(&secrets.bindings(&origin, &[]));
    let write = secrets.token(Scope::Write, 3600);
    let (builder, _unsigned) = builder_store(seed);
    let netrc_dir = temp_dir("netrc-");
    let netrc = netrc_file(netrc_dir.path(), &write);
    let to = format!("{}?write-nar-listing=true", worker.url());
    let (ok, _, err) = builder.run(&[
        "copy",
        "--to",
        &to,
        "--option",
        "netrc-file",
        netrc.to_str().unwrap(),
        &seed.top_path,
    ]);
    assert!(ok, "nix copy --to with listings failed: {err}");
    let stored = files_in(bucket.path());
    for path in &seed.closure {
        let ls = format!("{}.ls", Seed::hash_of(path));
        assert!(stored.contains(&ls), "{ls} not in the bucket: {stored:?}");
        let text = fs::read_to_string(bucket.path().join(&ls)).unwrap();
        assert!(text.starts_with("{\"version\":1"), "{ls}: {text}");
    }
    let puts = origin_requests_with_method(&origin, "PUT");
    assert!(puts
        .iter()
        .filter(|p| p.target.ends_with(".ls"))
        .all(|p| p.header("content-type") == Some("application/json")));
    // Served back as pushed.
    let top_ls = format!("/{}.ls", Seed::hash_of(&seed.top_path));
    let r = get(&worker, &top_ls, None);
    assert_status(&r, 200, &top_ls);
    assert_eq!(
        r.body,
        fs::read(bucket.path().join(&top_ls[1..])).unwrap(),
        "the listing differs"
    );
    secrets.assert_kept(&[&write], &[r], &worker);
}
