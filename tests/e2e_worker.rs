//! The Worker end to end, with real processes on 127.0.0.1: the built Worker under workerd
//! (Miniflare), `s3s-fs` verifying SigV4 behind a proxy that counts origin requests, and the
//! Nix client substituting through the Worker from a cache the Nix client made and signed.
//!
//! One stack serves most checks (`serves_a_seeded_cache_through_the_edge`); the others need a
//! Worker with different bindings (a wrong secret, no secret, an origin that is not there, an
//! origin that answers garbage), or
//! the test build with routes that panic on purpose (`--features panic-route`).

mod support;

use std::sync::Mutex;
use std::thread;
use std::time::Duration;

use support::http::{self, Response};
use support::{closed_port, seed, Checks, NixEnv, S3Origin, Seed, Worker};

const BUCKET: &str = "nix-cache";
/// `user:hunter2`, a client credential that must never reach the origin.
const CLIENT_BASIC_TOKEN: &str = "dXNlcjpodW50ZXIy";

/// A Worker plus every response it gave, so that each test can check that none of them leaked
/// a secret or an `Authorization` header.
struct Client<'a> {
    worker: &'a Worker,
    seen: Mutex<Vec<(String, Response)>>,
}

impl<'a> Client<'a> {
    fn new(worker: &'a Worker) -> Self {
        Client {
            worker,
            seen: Mutex::new(Vec::new()),
        }
    }

    fn send(&self, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
        let response = http::request(self.worker.port, method, target, headers);
        self.record(method, target, &response);
        response
    }

    fn get(&self, target: &str) -> Response {
        self.send("GET", target, &[])
    }

    fn head(&self, target: &str) -> Response {
        self.send("HEAD", target, &[])
    }

    fn get_compare(&self, target: &str, file: &std::path::Path) -> Response {
        let response = http::request_compare(self.worker.port, "GET", target, &[], file);
        self.record("GET", target, &response);
        response
    }

    fn record(&self, method: &str, target: &str, response: &Response) {
        let short: String = target.chars().take(80).collect();
        self.seen
            .lock()
            .unwrap()
            .push((format!("{method} {short}"), response.clone()));
    }

    /// No response so far carried any of `secrets` (in a header or the body) or an
    /// `Authorization` header.
    fn assert_no_leaks(&self, secrets: &[&str]) {
        let seen = self.seen.lock().unwrap();
        assert!(!seen.is_empty(), "no responses recorded");
        for (what, response) in seen.iter() {
            assert!(
                response.header("authorization").is_none(),
                "{what}: the response has an Authorization header"
            );
            let raw = response.raw_text();
            for secret in secrets {
                assert!(
                    !raw.contains(secret),
                    "{what}: the response carries a secret"
                );
            }
            assert!(
                !raw.contains(CLIENT_BASIC_TOKEN),
                "{what}: the response echoes the client's credentials"
            );
            assert!(
                !response
                    .headers
                    .iter()
                    .any(|(n, _)| n.starts_with("x-amz-")),
                "{what}: x-amz-* header leaked: {:?}",
                response.headers
            );
        }
    }
}

fn narinfo_target(store_path: &str) -> String {
    format!("/{}.narinfo", Seed::hash_of(store_path))
}

fn content_type(response: &Response) -> String {
    response.header("content-type").unwrap_or("").to_string()
}

/// Waits until a store the Worker makes after this call has landed: a miss for a fresh
/// narinfo (the origin has none) is remembered at the edge, and its HIT is awaited. Stores the
/// Worker started for earlier requests were queued before it, so a check that something was
/// never stored cannot pass by asking too early.
fn store_barrier(client: &Client) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    let n = NEXT.fetch_add(1, Ordering::SeqCst);
    let target = format!("/{:z>32}.narinfo", n);
    assert_status(&client.get(&target), 404, "the barrier's miss");
    await_edge_copy(client, &target);
}

/// Waits until the edge has stored `target` (a HEAD answered `x-cache: HIT`), since the Worker
/// stores after answering. Panics after 15 s.
fn await_edge_copy(client: &Client, target: &str) {
    for _ in 0..60 {
        if client.head(target).header("x-cache") == Some("HIT") {
            return;
        }
        thread::sleep(Duration::from_millis(250));
    }
    panic!("{target} was never stored at the edge");
}

fn assert_status(response: &Response, status: u16, what: &str) {
    assert_eq!(
        response.status,
        status,
        "{what}: status {} (body: {:?}, headers: {:?})",
        response.status,
        response.text().chars().take(300).collect::<String>(),
        response.headers
    );
}

/// The closure path whose name ends with `suffix`.
fn closure_path(seed: &Seed, suffix: &str) -> String {
    seed.closure
        .iter()
        .find(|p| p.ends_with(suffix))
        .unwrap_or_else(|| panic!("no {suffix} in {:?}", seed.closure))
        .clone()
}

#[test]
fn serves_a_seeded_cache_through_the_edge() {
    let seed = seed();
    let mut origin = S3Origin::start(&seed.cache, BUCKET);
    let mut bindings = origin.bindings();
    bindings.push(("PUBLIC_KEYS".into(), seed.public_key.clone()));
    let worker = Worker::start(&bindings);
    let client = Client::new(&worker);
    let mut checks = Checks::new();

    let leaf = closure_path(seed, "-nix-spaces-cache-seed-leaf");
    let mid = closure_path(seed, "-nix-spaces-cache-seed-mid");
    let busybox = closure_path(seed, "-busybox");

    checks.check("GET /nix-cache-info is answered by the Worker", || {
        let before = origin.proxy.count();
        let r = client.get("/nix-cache-info");
        assert_status(&r, 200, "/nix-cache-info");
        assert!(
            content_type(&r).starts_with("text/x-nix-cache-info"),
            "content-type {:?}",
            content_type(&r)
        );
        let text = r.text();
        for line in ["StoreDir: /nix/store", "WantMassQuery: 1", "Priority: 40"] {
            assert!(text.lines().any(|l| l == line), "{line:?} not in {text:?}");
        }
        assert_eq!(
            origin.proxy.count(),
            before,
            "nix-cache-info reached the origin"
        );
    });

    checks.check(
        "a Range past the end of an uncached NAR is a 416 naming the length, never stored",
        || {
            let info = seed.narinfo(&leaf);
            let target = format!("/{}", info.url);
            let size = std::fs::metadata(seed.cache.join(&info.url)).unwrap().len();
            let past = format!("bytes={}-", size + 10);
            let unsatisfied = format!("bytes */{size}");
            for _ in 0..2 {
                let before = origin.proxy.count();
                let r = client.send("GET", &target, &[("Range", past.as_str())]);
                assert_status(&r, 416, "Range past the end");
                assert_eq!(r.header("content-range"), Some(unsatisfied.as_str()));
                assert_eq!(r.header("cache-control"), Some("no-store"));
                assert_eq!(r.header("x-cache"), Some("MISS"));
                assert_eq!(origin.proxy.count(), before + 1, "416 not from the origin");
            }
        },
    );

    checks.check("GET / is a page showing the nix.conf lines", || {
        let r = client.get("/");
        assert_status(&r, 200, "/");
        assert!(content_type(&r).starts_with("text/html"), "{:?}", r.headers);
        let page = r.text();
        assert!(page.contains("<html") || page.contains("<!DOCTYPE") || page.contains("<!doctype"));
        assert!(
            page.contains("substituters"),
            "no substituters line: {page}"
        );
        assert!(
            page.contains("trusted-public-keys"),
            "no trusted-public-keys line"
        );
        assert!(
            page.contains(&seed.public_key),
            "the public key is not shown"
        );
        assert!(
            page.contains(&format!("127.0.0.1:{}", worker.port)),
            "the page does not name this cache's URL"
        );
    });

    checks.check(
        "narinfo: first MISS from the origin, then HIT with no origin request",
        || {
            let target = narinfo_target(&leaf);
            let on_disk = std::fs::read(seed.narinfo_file(&leaf)).unwrap();
            let before = origin.proxy.count();
            let first = client.get(&target);
            assert_status(&first, 200, &target);
            assert_eq!(first.header("x-cache"), Some("MISS"));
            assert!(
                content_type(&first).starts_with("text/x-nix-narinfo"),
                "{:?}",
                first.headers
            );
            assert_eq!(first.body, on_disk, "narinfo body differs from the file");
            let requests = origin.proxy.requests();
            assert_eq!(requests.len(), before + 1, "expected one origin request");
            let sent = &requests[before];
            assert_eq!(sent.method, "GET");
            assert_eq!(sent.target, format!("/{BUCKET}{target}"));
            await_edge_copy(&client, &target);
            let before = origin.proxy.count();
            let second = client.get(&target);
            assert_status(&second, 200, &target);
            assert_eq!(second.header("x-cache"), Some("HIT"));
            assert_eq!(second.body, on_disk);
            assert_eq!(origin.proxy.count(), before, "the HIT reached the origin");
        },
    );

    checks.check(
        "NAR: first MISS from the origin, then HIT with no origin request",
        || {
            let info = seed.narinfo(&leaf);
            let target = format!("/{}", info.url);
            let on_disk = std::fs::read(seed.cache.join(&info.url)).unwrap();
            let before = origin.proxy.count();
            let first = client.get(&target);
            assert_status(&first, 200, &target);
            assert_eq!(first.header("x-cache"), Some("MISS"));
            assert_eq!(first.body, on_disk, "NAR body differs from the file");
            assert_eq!(origin.proxy.count(), before + 1);
            await_edge_copy(&client, &target);
            let before = origin.proxy.count();
            let second = client.get(&format!("{target}?hash=ignored"));
            assert_status(&second, 200, &target);
            assert_eq!(
                second.header("x-cache"),
                Some("HIT"),
                "a ?hash= query must not change the key"
            );
            assert_eq!(second.body, on_disk);
            assert_eq!(origin.proxy.count(), before, "the HIT reached the origin");
        },
    );

    checks.check(
        "HEAD on a narinfo and a NAR: headers, no body, right Content-Length",
        || {
            // Not fetched before: answered through the origin.
            let target = narinfo_target(&mid);
            let size = std::fs::metadata(seed.narinfo_file(&mid)).unwrap().len();
            let r = client.head(&target);
            assert_status(&r, 200, &target);
            assert_eq!(r.body_len, 0, "HEAD sent a body");
            assert_eq!(
                r.header("content-length"),
                Some(size.to_string().as_str()),
                "{:?}",
                r.headers
            );
            let info = seed.narinfo(&busybox);
            let nar = format!("/{}", info.url);
            let r = client.head(&nar);
            assert_status(&r, 200, &nar);
            assert_eq!(r.body_len, 0, "HEAD sent a body");
            assert_eq!(
                r.header("content-length"),
                Some(info.file_size.to_string().as_str()),
                "{:?}",
                r.headers
            );
            // Stored at the edge: answered from the cache.
            let before = origin.proxy.count();
            let leaf_info = seed.narinfo(&leaf);
            let r = client.head(&format!("/{}", leaf_info.url));
            assert_status(&r, 200, "HEAD on a cached NAR");
            assert_eq!(r.body_len, 0, "HEAD sent a body");
            assert_eq!(r.header("x-cache"), Some("HIT"));
            assert_eq!(
                r.header("content-length"),
                Some(leaf_info.file_size.to_string().as_str())
            );
            assert_eq!(
                origin.proxy.count(),
                before,
                "a HEAD on a cached NAR reached the origin"
            );
        },
    );

    checks.check(
        "Range: bytes=0-99 on a NAR is a 206 with those 100 bytes",
        || {
            let info = seed.narinfo(&busybox);
            let target = format!("/{}", info.url);
            let on_disk = std::fs::read(seed.cache.join(&info.url)).unwrap();
            let want_range = format!("bytes 0-99/{}", on_disk.len());
            let r = client.send("GET", &target, &[("Range", "bytes=0-99")]);
            assert_status(&r, 206, "Range on an uncached NAR");
            assert_eq!(r.body, on_disk[..100].to_vec());
            assert_eq!(r.header("content-range"), Some(want_range.as_str()));
            // Then from a stored full object.
            let full = client.get(&target);
            assert_status(&full, 200, &target);
            assert_eq!(full.body, on_disk);
            await_edge_copy(&client, &target);
            let before = origin.proxy.count();
            let r = client.send("GET", &target, &[("Range", "bytes=0-99")]);
            assert_status(&r, 206, "Range on a cached NAR");
            assert_eq!(r.body, on_disk[..100].to_vec());
            assert_eq!(r.header("content-range"), Some(want_range.as_str()));
            assert_eq!(r.header("x-cache"), Some("HIT"));
            assert_eq!(
                origin.proxy.count(),
                before,
                "a Range on a cached NAR reached the origin"
            );
        },
    );

    checks.check(
        "a missing narinfo is a 404, remembered briefly at the edge",
        || {
            let target = "/0123456789abcdfghijklmnpqrsvwxyz.narinfo";
            let before = origin.proxy.count();
            let first = client.get(target);
            assert_status(&first, 404, target);
            assert_eq!(
                origin.proxy.count(),
                before + 1,
                "the miss was not asked at the origin"
            );
            await_edge_copy(&client, target);
            let before = origin.proxy.count();
            let second = client.get(target);
            assert_status(&second, 404, target);
            assert_eq!(second.header("x-cache"), Some("HIT"));
            assert_eq!(
                origin.proxy.count(),
                before,
                "the remembered miss reached the origin"
            );
        },
    );

    checks.check("refused paths are 4xx and never reach the origin", || {
        let before = origin.proxy.count();
        let long = format!("/{}", "a".repeat(10 * 1024));
        let nar52 = "0".repeat(52);
        let hash31 = "0".repeat(31);
        let hash33 = "0".repeat(33);
        let bad: Vec<String> = vec![
            "/nar/../etc/passwd".into(),
            "/%2e%2e/x".into(),
            "/nar/%2E%2E/x".into(),
            "/nar/%2e%2e/%2e%2e/etc/passwd".into(),
            format!("/{}.narinfo", "e".repeat(32)),
            format!("/{}.narinfo", "o".repeat(32)),
            format!("/{}.narinfo", "u".repeat(32)),
            format!("/{}.narinfo", "t".repeat(32)),
            format!("/{}.narinfo", "ABCDFGHIJKLMNPQRSVWXYZ0123456789"),
            format!("/{hash31}.narinfo"),
            format!("/{hash33}.narinfo"),
            long,
            format!("/nar/{nar52}.nar.rar"),
            "/foo".into(),
            "/nix-cache-info/extra".into(),
            format!("/{}%2Enarinfo", "0".repeat(32)),
            format!("/nar/{}.nar", "0".repeat(51)),
            "/nar/".into(),
        ];
        let mut wrong = Vec::new();
        for target in &bad {
            let r = client.get(target);
            if !(400..500).contains(&r.status) {
                wrong.push(format!(
                    "{} -> {}",
                    &target[..target.len().min(60)],
                    r.status
                ));
            }
        }
        assert!(wrong.is_empty(), "not refused with a 4xx: {wrong:?}");
        let reached: Vec<String> = origin.proxy.requests()[before..]
            .iter()
            .map(|r| r.target.chars().take(80).collect())
            .collect();
        assert!(
            reached.is_empty(),
            "refused paths reached the origin: {reached:?}"
        );
    });

    checks.check("POST, PUT and DELETE are 405 with Allow: GET, HEAD", || {
        let before = origin.proxy.count();
        for method in ["POST", "PUT", "DELETE"] {
            for target in [narinfo_target(&leaf), "/nix-cache-info".to_string()] {
                let r = client.send(method, &target, &[]);
                assert_status(&r, 405, &format!("{method} {target}"));
                assert_eq!(r.header("allow"), Some("GET, HEAD"), "{method} {target}");
            }
        }
        assert_eq!(
            origin.proxy.count(),
            before,
            "a refused method reached the origin"
        );
    });

    checks.check(
        "the client's Authorization and cookies are not forwarded",
        || {
            let top = seed.top_path.clone();
            let target = narinfo_target(&top);
            let before = origin.proxy.count();
            let auth = format!("Basic {CLIENT_BASIC_TOKEN}");
            let r = client.send(
                "GET",
                &target,
                &[("Authorization", &auth), ("Cookie", "session=abc123")],
            );
            assert_status(&r, 200, &target);
            let requests = origin.proxy.requests();
            assert_eq!(requests.len(), before + 1);
            let sent = &requests[before];
            let authorization = sent.header("authorization").unwrap_or("");
            assert!(
                authorization.starts_with(&format!(
                    "AWS4-HMAC-SHA256 Credential={}/",
                    origin.access_key
                )),
                "origin saw Authorization {authorization:?}"
            );
            assert!(
                sent.headers
                    .iter()
                    .all(|(_, v)| !v.contains(CLIENT_BASIC_TOKEN)),
                "the client's Basic credentials reached the origin: {:?}",
                sent.headers
            );
            assert!(
                sent.header("cookie").is_none(),
                "the client's cookie reached the origin"
            );
            assert!(
                sent.header("x-amz-content-sha256").is_some(),
                "no x-amz-content-sha256: {:?}",
                sent.headers
            );
        },
    );

    checks.check(
        "a NAR over 64 MiB streams byte-identical, cold and from its segments at the edge",
        || {
            let info = seed.narinfo(&seed.large_path);
            let target = format!("/{}", info.url);
            let file = seed.cache.join(&info.url);
            assert!(info.file_size >= 64 * 1024 * 1024);
            let cold = client.get_compare(&target, &file);
            assert_status(&cold, 200, "large NAR");
            assert_eq!(cold.body_len, info.file_size, "cold: length");
            assert_eq!(cold.first_mismatch, None, "cold: bytes differ");
            assert_eq!(cold.header("x-cache"), Some("MISS"));
            // Over SEGMENT_BYTES (32 MiB by default): kept as 3 segments, stored after the
            // answer; wait until the Worker says the last one is in.
            assert!(
                worker.wait_for_log("of 3: https://", 3, Duration::from_secs(60)),
                "not every segment was stored"
            );
            let before = origin.proxy.count();
            let warm = client.get_compare(&target, &file);
            assert_status(&warm, 200, "large NAR, second time");
            assert_eq!(warm.body_len, info.file_size, "cached: length");
            assert_eq!(warm.first_mismatch, None, "cached: bytes differ");
            assert_eq!(warm.header("x-cache"), Some("HIT"));
            assert_eq!(origin.proxy.count(), before);
        },
    );

    checks.check(
        "nix copy --from the Worker brings the whole closure, verified",
        || {
            let nix = NixEnv::new();
            let url = worker.url();
            nix.copy_seeded_closure(&url, seed);
        },
    );

    checks.check(
        "nix copy of a path the cache does not have fails as not available",
        || {
            let nix = NixEnv::new();
            let missing = "/nix/store/0123456789abcdfghijklmnpqrsvwxyz-not-in-this-cache";
            let (ok, _, err) = nix.run(&[
                "copy",
                "--from",
                &worker.url(),
                "--option",
                "trusted-public-keys",
                &seed.public_key,
                missing,
            ]);
            assert!(!ok, "nix copy of a missing path succeeded");
            let err_lower = err.to_lowercase();
            assert!(
                [
                    "not available",
                    "does not exist",
                    "no substituter",
                    "is not valid"
                ]
                .iter()
                .any(|m| err_lower.contains(m)),
                "Nix did not say the path is missing: {err}"
            );
            assert!(
                !err_lower.contains("http error"),
                "Nix saw an HTTP error: {err}"
            );
        },
    );

    checks.check(
        "the origin down: 502 naming the cause, and the Worker lives on",
        || {
            origin.s3s_fs.kill();
            let target = narinfo_target(&seed.large_path);
            let r = client.get(&target);
            assert_status(&r, 502, "origin down");
            assert_eq!(r.text(), "origin unreachable\n");
            let again = client.get(&target);
            assert_status(&again, 502, "origin down, again (a 502 is never cached)");
            let info = client.get("/nix-cache-info");
            assert_status(&info, 200, "/nix-cache-info after the origin went down");
        },
    );

    checks.check(
        "no response carried a secret or an Authorization header",
        || {
            client.assert_no_leaks(&[&origin.secret_key]);
        },
    );

    checks.finish(|| worker.process.log_tail());
}

#[test]
fn wrong_secret_is_a_502_naming_the_credentials_and_is_not_cached() {
    let seed = seed();
    let origin = S3Origin::start(&seed.cache, BUCKET);
    let wrong_secret = format!("wrong{}", support::random_hex(16));
    let bindings: Vec<(String, String)> = origin
        .bindings()
        .into_iter()
        .map(|(k, v)| {
            if k == "SPACES_SECRET_ACCESS_KEY" {
                (k, wrong_secret.clone())
            } else {
                (k, v)
            }
        })
        .collect();
    let worker = Worker::start(&bindings);
    let client = Client::new(&worker);
    let mut checks = Checks::new();
    let target = narinfo_target(&seed.top_path);

    checks.check(
        "a wrong secret gives 502 naming the credentials problem",
        || {
            let r = client.get(&target);
            assert_status(&r, 502, "wrong secret");
            assert_eq!(
                r.text(),
                "origin rejected the Worker's credentials (SignatureDoesNotMatch)\n"
            );
            assert_ne!(r.header("x-cache"), Some("HIT"));
        },
    );

    checks.check(
        "the 502 is not cached: the next request asks the origin again",
        || {
            let before = origin.proxy.count();
            let r = client.get(&target);
            assert_status(&r, 502, "wrong secret, again");
            assert_ne!(r.header("x-cache"), Some("HIT"));
            assert_eq!(
                origin.proxy.count(),
                before + 1,
                "the 502 was served from the edge cache"
            );
        },
    );

    checks.check(
        "no response carried either secret or an Authorization header",
        || {
            client.assert_no_leaks(&[&wrong_secret, &origin.secret_key]);
        },
    );

    checks.finish(|| worker.process.log_tail());
}

#[test]
fn missing_secret_is_a_500_naming_the_binding() {
    let seed = seed();
    let origin = S3Origin::start(&seed.cache, BUCKET);
    let bindings: Vec<(String, String)> = origin
        .bindings()
        .into_iter()
        .filter(|(k, _)| k != "SPACES_SECRET_ACCESS_KEY")
        .collect();
    let mut worker = Worker::start(&bindings);
    let client = Client::new(&worker);
    let mut checks = Checks::new();

    checks.check(
        "a narinfo request is a 500 naming SPACES_SECRET_ACCESS_KEY",
        || {
            let target = narinfo_target(&seed.top_path);
            let r = client.get(&target);
            assert_status(&r, 500, "no secret");
            assert!(
                r.text().contains("SPACES_SECRET_ACCESS_KEY"),
                "the 500 does not name the binding: {:?}",
                r.text()
            );
            let again = client.get(&target);
            assert_status(&again, 500, "no secret, again");
            assert_eq!(
                origin.proxy.count(),
                0,
                "the origin was asked without a secret"
            );
        },
    );

    checks.check("no response leaked the access key id's secret twin", || {
        client.assert_no_leaks(&[&origin.secret_key]);
    });

    let running = worker.process.is_running();
    checks.check("the Worker is still running", || assert!(running));
    checks.finish(|| worker.process.log_tail());
}

#[test]
fn unreachable_origin_is_a_502_and_the_worker_lives_on() {
    let seed = seed();
    let origin = S3Origin::start(&seed.cache, BUCKET);
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let bindings: Vec<(String, String)> = origin
        .bindings()
        .into_iter()
        .map(|(k, v)| {
            if k == "SPACES_ENDPOINT" {
                (k, endpoint.clone())
            } else {
                (k, v)
            }
        })
        .collect();
    let mut worker = Worker::start(&bindings);
    let client = Client::new(&worker);
    let mut checks = Checks::new();

    checks.check("a closed origin port gives 502 naming the cause", || {
        let target = narinfo_target(&seed.top_path);
        let r = client.get(&target);
        assert_status(&r, 502, "closed port");
        assert_eq!(r.text(), "origin unreachable\n");
        let nar = format!("/{}", seed.narinfo(&seed.top_path).url);
        assert_status(&client.get(&nar), 502, "closed port, NAR");
    });

    checks.check("the Worker still answers afterwards", || {
        let r = client.get("/nix-cache-info");
        assert_status(&r, 200, "/nix-cache-info");
    });

    checks.check("no response carried the secret", || {
        client.assert_no_leaks(&[&origin.secret_key]);
    });

    let running = worker.process.is_running();
    checks.check("the Worker process is still running", || assert!(running));
    checks.finish(|| worker.process.log_tail());
}

/// The answers of a misbehaving origin, each for its own narinfo.
struct Garbage {
    key: String,
    answer: Vec<u8>,
}

fn garbage(hash_letter: char, answer: Vec<u8>) -> Garbage {
    Garbage {
        key: format!("{}.narinfo", hash_letter.to_string().repeat(32)),
        answer,
    }
}

fn xml_error(code: &str) -> String {
    format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>…</Message></Error>")
}

#[test]
fn an_origin_that_answers_garbage_gets_a_clear_answer_and_nothing_wrong_is_kept() {
    use support::{chunked, random_hex, raw_answer, ScriptedOrigin};

    let xml = |status: &str, code: &str| {
        let body = xml_error(code);
        let len = body.len().to_string();
        raw_answer(
            status,
            &[
                ("content-type", "application/xml"),
                ("content-length", &len),
            ],
            body.as_bytes(),
        )
    };
    let no_length = |status: &str, body: &[u8]| {
        raw_answer(status, &[("transfer-encoding", "chunked")], &chunked(body))
    };
    let server_error = garbage('0', xml("500 Internal Server Error", "InternalError"));
    let html_503 = garbage(
        '1',
        raw_answer(
            "503 Service Unavailable",
            &[("content-type", "text/html")],
            b"<html><body>upstream overloaded</body></html>",
        ),
    );
    let forbidden_page = b"<html><body>403 Forbidden</body></html>";
    let html_403 = garbage(
        '2',
        raw_answer(
            "403 Forbidden",
            &[
                ("content-type", "text/html"),
                ("content-length", &forbidden_page.len().to_string()),
            ],
            forbidden_page,
        ),
    );
    let unsized_denied = garbage(
        '3',
        no_length("403 Forbidden", xml_error("AccessDenied").as_bytes()),
    );
    let mut padded = vec![b'x'; 64 * 1024];
    padded.extend_from_slice(xml_error("AccessDenied").as_bytes());
    let code_past_the_limit = garbage('4', no_length("403 Forbidden", &padded));
    let no_bucket = garbage('5', xml("404 Not Found", "NoSuchBucket"));
    let redirect = garbage(
        '6',
        raw_answer(
            "302 Found",
            &[("location", "/elsewhere"), ("content-length", "0")],
            b"",
        ),
    );
    let not_http = garbage('7', b"this is not HTTP at all\r\n\r\n".to_vec());
    let narinfo = b"StorePath: /nix/store/8888888888888888888888888888888-x\n";
    let leaky_200 = garbage(
        '8',
        raw_answer(
            "200 OK",
            &[
                ("content-type", "application/octet-stream"),
                ("content-length", &narinfo.len().to_string()),
                ("set-cookie", "session=origin-cookie"),
                ("x-amz-request-id", "ORIGINREQUESTID"),
                ("x-amz-meta-owner", "someone"),
                ("etag", "\"abc\""),
            ],
            narinfo,
        ),
    );
    let cases = [
        &server_error,
        &html_503,
        &html_403,
        &unsized_denied,
        &code_past_the_limit,
        &no_bucket,
        &redirect,
        &not_http,
        &leaky_200,
    ];
    let origin = ScriptedOrigin::start(
        cases
            .iter()
            .map(|c| (c.key.clone(), c.answer.clone()))
            .collect(),
    );
    let secret = random_hex(20);
    let bindings: Vec<(String, String)> = vec![
        ("SPACES_ENDPOINT".into(), origin.url()),
        ("SPACES_BUCKET".into(), BUCKET.into()),
        ("SPACES_REGION".into(), "us-east-1".into()),
        ("SPACES_ACCESS_KEY_ID".into(), "TESTKEY".into()),
        ("SPACES_SECRET_ACCESS_KEY".into(), secret.clone()),
        ("STORE_DIR".into(), "/nix/store".into()),
        ("WANT_MASS_QUERY".into(), "1".into()),
        ("PRIORITY".into(), "40".into()),
    ];
    let mut worker = Worker::start(&bindings);
    let client = Client::new(&worker);
    let mut checks = Checks::new();
    let target = |case: &Garbage| format!("/{}", case.key);

    // A 502 each time it is asked, a plain-text reason naming the cause, never stored.
    let fails_every_time = |case: &Garbage, says: &str| {
        for attempt in 1..=2 {
            let r = client.get(&target(case));
            assert_status(&r, 502, &format!("{} (attempt {attempt})", case.key));
            assert_eq!(
                r.text(),
                format!("{says}\n"),
                "{}: the 502 does not give the reason",
                case.key
            );
            assert_eq!(r.header("cache-control"), Some("no-store"));
            assert_eq!(content_type(&r), "text/plain; charset=utf-8");
            store_barrier(&client);
        }
        assert_eq!(
            origin.count_for(&case.key),
            2,
            "{}: a 502 was kept",
            case.key
        );
    };

    checks.check(
        "an origin 500 with S3's XML is a 502 naming the status",
        || {
            fails_every_time(&server_error, "origin answered 500");
        },
    );
    checks.check(
        "an origin 503 with an HTML body is a 502 naming the status",
        || {
            fails_every_time(&html_503, "origin answered 503");
        },
    );
    checks.check(
        "an origin 403 without an S3 code is a 502, not a 404",
        || {
            fails_every_time(&html_403, "origin refused access (403)");
        },
    );
    checks.check(
        "a 403 AccessDenied of unknown length is read and is a 404, kept briefly",
        || {
            let r = client.get(&target(&unsized_denied));
            assert_status(&r, 404, "AccessDenied, chunked");
            assert_eq!(r.text(), "not in this cache\n");
            assert_eq!(r.header("x-cache"), Some("MISS"));
            store_barrier(&client);
            let again = client.get(&target(&unsized_denied));
            assert_status(&again, 404, "AccessDenied, chunked, again");
            assert_eq!(again.header("x-cache"), Some("HIT"));
            assert_eq!(origin.count_for(&unsized_denied.key), 1);
        },
    );
    checks.check(
        "an error body is read only up to its limit: a code after 64 KiB of junk is not seen",
        || fails_every_time(&code_past_the_limit, "origin refused access (403)"),
    );
    checks.check("a 404 NoSuchBucket is a 502 naming SPACES_BUCKET", || {
        fails_every_time(
            &no_bucket,
            "origin has no such bucket (NoSuchBucket): check SPACES_BUCKET",
        );
    });
    checks.check(
        "a redirect is not followed: a 502 naming the status",
        || {
            fails_every_time(&redirect, "origin answered an unexpected 302");
            assert_eq!(
                origin.count_for("/elsewhere"),
                0,
                "the redirect was followed"
            );
        },
    );
    checks.check("an answer that is not HTTP is a 502", || {
        fails_every_time(&not_http, "origin unreachable");
    });
    checks.check("HEAD on a failing origin is a 502 without a body", || {
        let r = client.head(&target(&server_error));
        assert_status(&r, 502, "HEAD, origin 500");
        assert_eq!(r.body_len, 0);
    });
    checks.check(
        "a 200 is relayed with our content type and without the origin's cookies or x-amz-*",
        || {
            let r = client.get(&target(&leaky_200));
            assert_status(&r, 200, "narinfo");
            assert_eq!(r.text().as_bytes(), narinfo);
            assert_eq!(content_type(&r), "text/x-nix-narinfo");
            assert_eq!(r.header("etag"), Some("\"abc\""));
            assert_eq!(r.header("set-cookie"), None);
            assert!(
                !r.raw_text().contains("ORIGINREQUESTID") && !r.raw_text().contains("someone"),
                "origin headers leaked: {:?}",
                r.headers
            );
        },
    );
    checks.check(
        "every origin request was signed and carried no client header",
        || {
            let requests = origin.requests();
            assert!(!requests.is_empty());
            for request in requests {
                assert_eq!(request.method, "GET");
                let auth = request.header("authorization").unwrap_or_default();
                assert!(
                    auth.starts_with("AWS4-HMAC-SHA256 Credential=TESTKEY/"),
                    "{auth}"
                );
            }
        },
    );
    checks.check("no response carried the secret", || {
        client.assert_no_leaks(&[&secret]);
    });

    let running = worker.process.is_running();
    checks.check("the Worker process is still running", || assert!(running));
    checks.finish(|| worker.process.log_tail());
}

/// The test build with the panic routes; `scripts/test.sh` builds it.
const PANIC_BUILD: &str = "target/worker-panic-route";
const PANIC_BUILD_HOW: &str = "bash scripts/build-worker.sh --out-dir target/worker-panic-route \
                               -- --features panic-route";

#[test]
fn a_panic_costs_one_request_and_a_fresh_instance_takes_over() {
    let seed = seed();
    let origin = S3Origin::start(&seed.cache, BUCKET);
    let mut worker = Worker::start_build(PANIC_BUILD, PANIC_BUILD_HOW, &origin.bindings());
    let client = Client::new(&worker);
    let mut checks = Checks::new();
    let instance = || client.get("/__panic/instance").text().trim().to_string();
    let top = seed.narinfo(&seed.top_path);

    checks.check(
        "before any panic: the first instance serves the cache",
        || {
            assert_eq!(instance(), "1");
            assert_status(&client.get(&narinfo_target(&seed.top_path)), 200, "narinfo");
        },
    );

    checks.check("a panic within the call fails that request only", || {
        let r = client.get("/__panic");
        assert!(r.status >= 500, "/__panic gave {}", r.status);
        assert_eq!(instance(), "2", "no fresh instance after the panic");
        assert_status(&client.get("/nix-cache-info"), 200, "/nix-cache-info");
        let dep = closure_path(seed, "-nix-spaces-cache-seed-leaf");
        assert_status(&client.get(&narinfo_target(&dep)), 200, "narinfo");
    });

    checks.check("a panic after an await fails that request only", || {
        let r = client.get("/__panic/later");
        assert!(r.status >= 500, "/__panic/later gave {}", r.status);
        assert_eq!(instance(), "3", "no fresh instance after the panic");
        let nar = format!("/{}", top.url);
        let r = client.get_compare(&nar, &seed.cache.join(&top.url));
        assert_status(&r, 200, "NAR after two panics");
        assert_eq!(r.first_mismatch, None, "the NAR differs from the bucket's");
    });

    checks.check("no response carried the secret", || {
        client.assert_no_leaks(&[&origin.secret_key]);
    });
    let running = worker.process.is_running();
    checks.check("the Worker process is still running", || assert!(running));
    checks.finish(|| worker.process.log_tail());
}
