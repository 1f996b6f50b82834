//! The read path's edges, end to end (workerd via Miniflare, s3s-fs verifying SigV4 behind the
//! counting proxy, the Nix client): vars written as TOML numbers and booleans, objects stored
//! with a `Content-Encoding`, conditional requests answered 304 from the edge, and an edge
//! cache that fails on every call.

mod support;

use std::process::Command;
use std::time::Duration;

use support::http::{self, Response};
use support::{put_object, seed, Checks, NixEnv, S3Origin, Seed, Worker, WorkerOptions};

const BUCKET: &str = "nix-cache";

/// Waits until the edge has stored `target` (a HEAD answered `x-cache: HIT`). Panics after 15 s.
fn await_edge_copy(worker: &Worker, target: &str) {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        if worker.head(target).header("x-cache") == Some("HIT") {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{target} was never stored at the edge");
}

fn status(r: &Response, want: u16, what: &str) {
    assert_eq!(
        r.status,
        want,
        "{what}: {} {:?} {:?}",
        r.status,
        r.headers,
        r.text().chars().take(200).collect::<String>()
    );
}

#[test]
fn vars_written_as_toml_numbers_and_booleans_are_read_as_such() {
    let seed = seed();
    let origin = S3Origin::start(&seed.cache, BUCKET);
    let typed = WorkerOptions::strings(&origin.bindings())
        .set("PRIORITY", 10.into())
        .set("WANT_MASS_QUERY", false.into())
        .set("NAR_TTL", 600.into());
    let worker = Worker::start_with(typed);
    let wrong = WorkerOptions::strings(&origin.bindings()).set("PRIORITY", true.into());
    let misconfigured = Worker::start_with(wrong);
    let mut checks = Checks::new();

    checks.check("PRIORITY = 10 and WANT_MASS_QUERY = false", || {
        let r = worker.get("/nix-cache-info");
        status(&r, 200, "/nix-cache-info");
        assert_eq!(
            r.text(),
            "StoreDir: /nix/store\nWantMassQuery: 0\nPriority: 10\n"
        );
    });

    checks.check("NAR_TTL = 600 sets the NAR's Cache-Control", || {
        let nar = format!("/{}", seed.narinfo(&seed.top_path).url);
        let r = worker.head(&nar);
        status(&r, 200, "NAR");
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=600, immutable")
        );
    });

    checks.check("PRIORITY = true is a 500 naming the binding", || {
        for target in ["/nix-cache-info", "/"] {
            let r = misconfigured.get(target);
            status(&r, 500, target);
            assert_eq!(
                r.text(),
                "Worker misconfigured: invalid binding PRIORITY: not a number\n"
            );
        }
    });

    checks.finish(|| {
        format!(
            "{}\n{}",
            worker.process.log_tail(),
            misconfigured.process.log_tail()
        )
    });
}

/// `data` compressed by `tool` (`xz`, `gzip`, `zstd`) with its command line.
fn compress(tool: &str, data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = Command::new(tool)
        .args(["-c", "-q"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    child.stdin.take().unwrap().write_all(data).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{tool} failed");
    out.stdout
}

/// A copy of the seeded cache without its big NAR, for a test that changes objects in it.
fn private_copy(seed: &Seed) -> tempfile::TempDir {
    let dir = support::temp_dir("cache-");
    let big = seed.narinfo(&seed.large_path).url;
    let mut stack = vec![std::path::PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(seed.cache.join(&rel)).unwrap().flatten() {
            let rel = rel.join(entry.file_name());
            if entry.file_type().unwrap().is_dir() {
                std::fs::create_dir_all(dir.path().join(&rel)).unwrap();
                stack.push(rel);
            } else if rel != std::path::Path::new(&big) {
                std::fs::copy(entry.path(), dir.path().join(&rel)).unwrap();
            }
        }
    }
    dir
}

#[test]
fn compressed_objects_and_conditional_requests() {
    let seed = seed();
    let cache = private_copy(seed);
    let origin = S3Origin::start(cache.path(), BUCKET);
    let worker = Worker::start(&origin.bindings());
    let mut checks = Checks::new();

    // The leaf's narinfo, replaced by its xz-compressed bytes with `Content-Encoding: xz`, as
    // `nix copy --to …?narinfo-compression=xz` uploads it.
    let leaf = seed
        .closure
        .iter()
        .find(|p| p.ends_with("-nix-spaces-cache-seed-leaf"))
        .expect("the leaf")
        .clone();
    let narinfo_key = format!("{}.narinfo", Seed::hash_of(&leaf));
    let plain = std::fs::read(seed.narinfo_file(&leaf)).unwrap();
    let xz = compress("xz", &plain);
    put_object(
        &origin,
        &narinfo_key,
        &xz,
        &[
            ("content-encoding", "xz"),
            ("content-type", "text/x-nix-narinfo"),
        ],
    );
    let listing = br#"{"version":1,"root":{"type":"regular","size":5,"narOffset":96}}"#;
    let objects: Vec<(String, &str, Vec<u8>)> = vec![
        (narinfo_key.clone(), "xz", xz.clone()),
        (
            format!("{}.ls", "1".repeat(32)),
            "gzip",
            compress("gzip", listing),
        ),
        (
            format!("{}.ls", "2".repeat(32)),
            "zstd",
            compress("zstd", listing),
        ),
        // Not valid brotli: the Worker must not try to decode it.
        (
            format!("{}.ls", "3".repeat(32)),
            "br",
            b"\x1b\x03\x00\xf8 not decoded".to_vec(),
        ),
    ];
    for (key, encoding, body) in &objects[1..] {
        put_object(&origin, key, body, &[("content-encoding", encoding)]);
    }

    for (key, encoding, body) in &objects {
        checks.check(
            &format!(
                "{key} with Content-Encoding {encoding}: same bytes and header, cold and warm"
            ),
            || {
                let target = format!("/{key}");
                for (pass, cache) in [("cold", "MISS"), ("warm", "HIT")] {
                    let r = worker.get(&target);
                    status(&r, 200, pass);
                    assert_eq!(r.header("content-encoding"), Some(*encoding), "{pass}");
                    let cache_control = r.header("cache-control").unwrap_or_default();
                    assert!(cache_control.ends_with(", no-transform"), "{cache_control}");
                    assert_eq!(r.header("x-cache"), Some(cache), "{pass}");
                    assert!(r.body == *body, "{pass}: the bytes changed on the way");
                    if pass == "cold" {
                        await_edge_copy(&worker, &target);
                    }
                }
            },
        );
    }

    checks.check(
        "Nix reads the xz-compressed narinfo through the Worker",
        || {
            let nix = NixEnv::new();
            let (ok, _, err) = nix.run(&[
                "copy",
                "--from",
                &worker.url(),
                "--option",
                "require-sigs",
                "true",
                "--option",
                "trusted-public-keys",
                &seed.public_key,
                &leaf,
            ]);
            assert!(ok, "nix copy: {err}");
            let (ok, out, err) = nix.run(&["path-info", &leaf]);
            assert!(ok && out.trim() == leaf, "path-info: {out} {err}");
        },
    );

    checks.check(
        "a stored narinfo: If-None-Match and If-Modified-Since are 304",
        || {
            let mid = seed
                .closure
                .iter()
                .find(|p| p.ends_with("-nix-spaces-cache-seed-mid"))
                .expect("the mid path");
            let target = format!("/{}.narinfo", Seed::hash_of(mid));
            let first = worker.get(&target);
            status(&first, 200, "narinfo");
            await_edge_copy(&worker, &target);
            let etag = first.header("etag").expect("an ETag").to_string();
            let modified = first
                .header("last-modified")
                .expect("Last-Modified")
                .to_string();
            let before = origin.proxy.count();
            for header in [
                ("If-None-Match", etag.as_str()),
                ("If-Modified-Since", &modified),
            ] {
                let r = worker.request("GET", &target, &[header]);
                status(&r, 304, &format!("{header:?}"));
                assert_eq!(r.body_len, 0);
                assert_eq!(r.header("etag"), Some(etag.as_str()));
                assert_eq!(r.header("x-cache"), Some("HIT"));
                let r = worker.request("HEAD", &target, &[header]);
                status(&r, 304, &format!("HEAD {header:?}"));
            }
            let older = "Mon, 01 Jan 2001 00:00:00 GMT";
            let r = worker.request("GET", &target, &[("If-Modified-Since", older)]);
            status(&r, 200, "modified since 2001");
            assert!(r.body == first.body);
            let r = worker.request("GET", &target, &[("If-None-Match", "\"other\"")]);
            status(&r, 200, "another ETag");
            assert_eq!(
                origin.proxy.count(),
                before,
                "a conditional request reached the origin"
            );
        },
    );

    checks.finish(|| worker.process.log_tail());
}

#[test]
fn an_edge_cache_that_fails_never_turns_a_working_origin_into_an_error() {
    let seed = seed();
    let origin = S3Origin::start(&seed.cache, BUCKET);
    let mut options = WorkerOptions::strings(&origin.bindings());
    options.failing_cache = true;
    let worker = Worker::start_with(options);
    let mut checks = Checks::new();
    let top = seed.narinfo(&seed.top_path);

    checks.check(
        "narinfo, NAR, HEAD and a miss: answered from the origin",
        || {
            let narinfo = format!("/{}.narinfo", Seed::hash_of(&seed.top_path));
            let plain = std::fs::read(seed.narinfo_file(&seed.top_path)).unwrap();
            for _ in 0..2 {
                let before = origin.proxy.count();
                let r = worker.get(&narinfo);
                status(&r, 200, "narinfo");
                assert!(r.body == plain);
                assert_eq!(r.header("x-cache"), Some("MISS"));
                assert_eq!(origin.proxy.count(), before + 1);
            }
            let nar = format!("/{}", top.url);
            let r =
                http::request_compare(worker.port, "GET", &nar, &[], &seed.cache.join(&top.url));
            status(&r, 200, "NAR");
            assert_eq!(r.first_mismatch, None);
            let r = worker.head(&nar);
            status(&r, 200, "HEAD");
            assert_eq!(
                r.header("content-length"),
                Some(top.file_size.to_string().as_str())
            );
            let r = worker.get(&format!("/{}.narinfo", "0".repeat(32)));
            status(&r, 404, "missing");
            assert_eq!(r.text(), "not in this cache\n");
        },
    );

    checks.check("each failure is logged", || {
        assert!(
            worker.wait_for_log(
                "injected edge cache failure: match",
                1,
                Duration::from_secs(10)
            ),
            "the failed lookup was not logged"
        );
        assert!(
            worker.wait_for_log(
                "injected edge cache failure: put",
                1,
                Duration::from_secs(10)
            ),
            "the failed store was not logged"
        );
    });

    checks.check("nix copy --from the Worker still verifies", || {
        NixEnv::new().copy_seeded_closure(&worker.url(), seed);
    });

    checks.finish(|| worker.process.log_tail());
}
