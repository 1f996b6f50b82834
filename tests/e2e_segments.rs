//! Big objects at the edge, end to end: the built Worker under workerd (Miniflare) with
//! `SEGMENT_BYTES` set small, so the seed's 65 MiB NAR is 17 segments of 4 MiB (the last one
//! 1 MiB and a bit).
//!
//! - s3s-fs (verifying SigV4) behind the counting proxy: cold and warm full GETs, Ranges cold
//!   and warm, HEAD, 304s, `nix copy --from`, and a slow client's memory.
//! - [`RangeOrigin`] (an S3-like origin that can change an object or drop a connection in the
//!   middle of a body): an object changed between two requests is never spliced; a segment cut
//!   short fails the client's transfer and is not stored.

mod support;

use std::time::Duration;

use support::{
    get_raw, seed, Checks, NixEnv, OriginObject, OriginRequest, RangeOrigin, S3Origin, Worker,
    WorkerOptions,
};

const BUCKET: &str = "nix-cache";
const MIB: u64 = 1024 * 1024;
const SEGMENT: u64 = 4 * MIB;

fn segmented_worker(origin_bindings: &[(String, String)], segment: u64) -> Worker {
    Worker::start_with(WorkerOptions::strings(origin_bindings).set("SEGMENT_BYTES", segment.into()))
}

/// The Range header of segment `index` of `segment` bytes in an object of `total`.
fn segment_range(index: u64, segment: u64, total: u64) -> String {
    let first = index * segment;
    format!("bytes={first}-{}", (first + segment).min(total) - 1)
}

fn ranges_asked(requests: &[OriginRequest]) -> Vec<String> {
    requests
        .iter()
        .map(|r| format!("{} {}", r.method, r.header("range").unwrap_or("(no range)")))
        .collect()
}

#[test]
fn a_big_nar_is_kept_at_the_edge_in_segments() {
    let seed = seed();
    let origin = S3Origin::start(&seed.cache, BUCKET);
    let worker = segmented_worker(&origin.bindings(), SEGMENT);
    let mut checks = Checks::new();
    let info = seed.narinfo(&seed.large_path);
    let target = format!("/{}", info.url);
    let file = seed.cache.join(&info.url);
    let bytes = std::fs::read(&file).unwrap();
    let total = bytes.len() as u64;
    let count = total.div_ceil(SEGMENT);
    assert!(total > 64 * MIB && count == 17, "{total} bytes");
    let get = |headers: &[(&str, &str)]| get_raw(worker.port, &target, headers, None, || {});

    checks.check(
        "cold GET: byte-identical, the origin sees only ranged GETs of whole segments",
        || {
            let before = origin.proxy.count();
            let r = get(&[]);
            assert_eq!(r.status, 200);
            assert!(r.complete, "the body was cut short");
            assert_eq!(r.header("content-length"), Some(total.to_string().as_str()));
            assert_eq!(r.header("x-cache"), Some("MISS"));
            assert!(r.header("etag").is_some(), "no ETag: {:?}", r.headers);
            assert!(r.body == bytes, "the body differs from the bucket's");
            let asked = ranges_asked(&origin.proxy.requests()[before..]);
            let want: Vec<String> = (0..count)
                .map(|i| format!("GET {}", segment_range(i, SEGMENT, total)))
                .collect();
            assert_eq!(asked, want);
        },
    );

    checks.check("every segment is stored, each under its own key", || {
        let stored = format!("of {count}: https://");
        assert!(
            worker.wait_for_log(&stored, count as usize, Duration::from_secs(60)),
            "not every segment was stored:\n{}",
            worker.process.log_tail()
        );
    });

    checks.check(
        "warm GET: byte-identical, from the edge, no origin request",
        || {
            let before = origin.proxy.count();
            let r = get(&[]);
            assert_eq!(r.status, 200);
            assert!(r.complete);
            assert_eq!(r.header("x-cache"), Some("HIT"));
            assert_eq!(r.header("content-length"), Some(total.to_string().as_str()));
            assert!(r.body == bytes, "the body differs from the bucket's");
            assert_eq!(
                ranges_asked(&origin.proxy.requests()[before..]),
                Vec::<String>::new()
            );
        },
    );

    checks.check(
        "warm Ranges: inside one segment, across a boundary, the last byte, past the end",
        || {
            let before = origin.proxy.count();
            let cases = [
                (5 * MIB + 17, 5 * MIB + 1016),
                (2 * SEGMENT - 100, 2 * SEGMENT + 99),
                (SEGMENT - 1, 3 * SEGMENT),
                (total - 1, total - 1),
                (0, 0),
            ];
            for (first, last) in cases {
                let range = format!("bytes={first}-{last}");
                let r = get(&[("Range", &range)]);
                assert_eq!(r.status, 206, "{range}");
                assert!(r.complete, "{range}: cut short");
                assert_eq!(r.header("x-cache"), Some("HIT"), "{range}");
                let want = format!("bytes {first}-{last}/{total}");
                assert_eq!(r.header("content-range"), Some(want.as_str()));
                assert!(
                    r.body == bytes[first as usize..=last as usize],
                    "{range}: wrong bytes"
                );
            }
            let r = get(&[("Range", "bytes=-10")]);
            assert_eq!(r.status, 206);
            assert!(r.body == bytes[bytes.len() - 10..]);
            let past = format!("bytes={}-", total + 10);
            let r = get(&[("Range", &past)]);
            assert_eq!(r.status, 416, "past the end");
            assert_eq!(
                r.header("content-range"),
                Some(format!("bytes */{total}").as_str())
            );
            assert_eq!(r.header("cache-control"), Some("no-store"));
            assert_eq!(
                origin.proxy.count(),
                before,
                "a warm Range reached the origin"
            );
        },
    );

    checks.check("warm HEAD: the length, no body, no origin request", || {
        let before = origin.proxy.count();
        let r = worker.head(&target);
        assert_eq!(r.status, 200);
        assert_eq!(r.body_len, 0);
        assert_eq!(r.header("content-length"), Some(total.to_string().as_str()));
        assert_eq!(r.header("x-cache"), Some("HIT"));
        assert_eq!(origin.proxy.count(), before);
    });

    checks.check(
        "If-None-Match and If-Modified-Since are 304 from the edge",
        || {
            let full = worker.head(&target);
            let etag = full.header("etag").expect("an ETag").to_string();
            let modified = full
                .header("last-modified")
                .expect("Last-Modified")
                .to_string();
            let before = origin.proxy.count();
            for header in [
                ("If-None-Match", etag.as_str()),
                ("If-Modified-Since", &modified),
            ] {
                let r = get(&[header]);
                assert_eq!(r.status, 304, "{header:?}");
                assert!(r.body.is_empty());
                assert_eq!(r.header("etag"), Some(etag.as_str()));
                assert_eq!(r.header("x-cache"), Some("HIT"));
            }
            let r = get(&[("If-None-Match", "\"another\"")]);
            assert_eq!(r.status, 200);
            assert!(r.body == bytes);
            assert_eq!(origin.proxy.count(), before);
        },
    );

    checks.check("nix copy --from of the big path verifies", || {
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
            &seed.large_path,
        ]);
        assert!(ok, "nix copy: {err}");
        let (ok, _, err) = nix.run(&[
            "store",
            "verify",
            "--sigs-needed",
            "1",
            "--option",
            "trusted-public-keys",
            &seed.public_key,
            &seed.large_path,
        ]);
        assert!(ok, "nix store verify: {err}");
    });

    checks.finish(|| worker.process.log_tail());
}

#[test]
fn cold_ranges_read_only_the_segments_they_touch() {
    let seed = seed();
    let origin = S3Origin::start(&seed.cache, BUCKET);
    let worker = segmented_worker(&origin.bindings(), SEGMENT);
    let mut checks = Checks::new();
    let info = seed.narinfo(&seed.large_path);
    let target = format!("/{}", info.url);
    let bytes = std::fs::read(seed.cache.join(&info.url)).unwrap();
    let total = bytes.len() as u64;

    // Each case touches segments no earlier case touched, so their bytes are not at the edge.
    // The first finds nothing stored (MISS); it stores the object's head entry, so the later
    // ones know the length (HIT) but still read their segments from the origin.
    let cases: [(&str, u64, u64, &[u64], &str); 3] = [
        (
            "inside one segment",
            5 * MIB + 3,
            5 * MIB + 2 * 1024,
            &[1],
            "MISS",
        ),
        (
            "across a boundary",
            3 * SEGMENT - 10,
            3 * SEGMENT + 9,
            &[2, 3],
            "HIT",
        ),
        ("the last byte", total - 1, total - 1, &[16], "HIT"),
    ];
    for (name, first, last, segments, cache) in cases {
        checks.check(&format!("cold Range {name}"), || {
            let before = origin.proxy.count();
            let range = format!("bytes={first}-{last}");
            let r = get_raw(worker.port, &target, &[("Range", &range)], None, || {});
            assert_eq!(r.status, 206, "{range}");
            assert!(r.complete, "{range}: cut short");
            assert_eq!(r.header("x-cache"), Some(cache));
            let want = format!("bytes {first}-{last}/{total}");
            assert_eq!(r.header("content-range"), Some(want.as_str()));
            assert!(
                r.body == bytes[first as usize..=last as usize],
                "wrong bytes"
            );
            let asked = ranges_asked(&origin.proxy.requests()[before..]);
            let want: Vec<String> = segments
                .iter()
                .map(|i| format!("GET {}", segment_range(*i, SEGMENT, total)))
                .collect();
            assert_eq!(asked, want, "{range}");
        });
    }

    checks.check("a Range past the end is a 416 from the head entry", || {
        let range = format!("bytes={}-", total + 10);
        let before = origin.proxy.count();
        let r = get_raw(worker.port, &target, &[("Range", &range)], None, || {});
        assert_eq!(r.status, 416);
        assert_eq!(
            r.header("content-range"),
            Some(format!("bytes */{total}").as_str())
        );
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(origin.proxy.count(), before);
    });

    checks.check("HEAD: the length, no body, from the head entry", || {
        let before = origin.proxy.count();
        let r = worker.head(&target);
        assert_eq!(r.status, 200);
        assert_eq!(r.body_len, 0);
        assert_eq!(r.header("content-length"), Some(total.to_string().as_str()));
        assert_eq!(r.header("x-cache"), Some("HIT"));
        assert_eq!(origin.proxy.count(), before);
    });

    checks.check(
        "a cold HEAD on another Worker: one ranged GET of segment 0",
        || {
            let cold = segmented_worker(&origin.bindings(), SEGMENT);
            let before = origin.proxy.count();
            let r = cold.head(&target);
            assert_eq!(r.status, 200);
            assert_eq!(r.body_len, 0);
            assert_eq!(r.header("content-length"), Some(total.to_string().as_str()));
            assert_eq!(r.header("x-cache"), Some("MISS"));
            let asked = ranges_asked(&origin.proxy.requests()[before..]);
            assert_eq!(asked, [format!("GET {}", segment_range(0, SEGMENT, total))]);
        },
    );

    checks.finish(|| worker.process.log_tail());
}

#[test]
fn a_slow_client_keeps_workerd_memory_within_about_a_segment() {
    let seed = seed();
    let origin = S3Origin::start(&seed.cache, BUCKET);
    let worker = segmented_worker(&origin.bindings(), SEGMENT);
    let info = seed.narinfo(&seed.large_path);
    let target = format!("/{}", info.url);
    // Warm the runtime up on another object, so its own growth is not counted.
    let narinfo = format!("/{}.narinfo", support::Seed::hash_of(&seed.top_path));
    assert_eq!(worker.get(&narinfo).status, 200);
    let idle = worker.workerd_rss_kib().expect("workerd's memory");
    let mut peak = idle;
    let started = std::time::Instant::now();
    // 2 MB/s for 8 s: 16 MB of the 65 MiB NAR, cold; then the client goes away.
    let rate = 2_000_000;
    let stream = std::thread::scope(|scope| {
        let reader = scope.spawn(|| {
            let mut stream =
                std::net::TcpStream::connect(("127.0.0.1", worker.port)).expect("connect");
            use std::io::{Read, Write};
            let head =
                format!("GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
            stream.write_all(head.as_bytes()).unwrap();
            let mut got = 0usize;
            let mut buf = vec![0u8; 16 * 1024];
            while got < 16_000_000 {
                let allowed = (started.elapsed().as_secs_f64() * rate as f64) as usize;
                if got >= allowed {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                }
                let want = (allowed - got).min(buf.len());
                match stream.read(&mut buf[..want]) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got += n,
                }
            }
            got
        });
        while !reader.is_finished() {
            if let Some(rss) = worker.workerd_rss_kib() {
                peak = peak.max(rss);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        reader.join().unwrap()
    });
    assert!(stream >= 15_000_000, "the client read only {stream} bytes");
    let grown_mib = (peak.saturating_sub(idle)) / 1024;
    println!(
        "workerd: idle {} MiB, peak {} MiB while a client read at 2 MB/s",
        idle / 1024,
        peak / 1024
    );
    // Without pacing, the edge cache's copy would pull the whole 65 MiB into memory while
    // the client lags; with it, about one 4 MiB segment is held, plus the runtime's slack.
    assert!(
        grown_mib <= 24,
        "workerd grew by {grown_mib} MiB (idle {idle} KiB, peak {peak} KiB)"
    );
}

/// An origin object of `len` bytes of a pattern seeded by `seed`, under a NAR key.
fn object(len: usize, seed: u8, etag: &str) -> OriginObject {
    let bytes = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).to_le_bytes()[1] ^ seed)
        .collect();
    OriginObject {
        bytes: std::sync::Arc::new(bytes),
        etag: etag.to_string(),
    }
}

const NAR_KEY: &str = "nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar";

fn range_origin_bindings(origin: &RangeOrigin) -> Vec<(String, String)> {
    vec![
        ("SPACES_ENDPOINT".into(), origin.url()),
        ("SPACES_BUCKET".into(), BUCKET.into()),
        ("SPACES_REGION".into(), "us-east-1".into()),
        ("SPACES_ACCESS_KEY_ID".into(), "TESTKEY".into()),
        ("SPACES_SECRET_ACCESS_KEY".into(), support::random_hex(20)),
    ]
}

#[test]
fn an_object_changed_at_the_origin_is_never_spliced() {
    let len = 3 * MIB as usize + 4096;
    let v1 = object(len, 1, "\"v1\"");
    let v2 = object(len, 2, "\"v2\"");
    let origin = RangeOrigin::start(vec![(NAR_KEY.into(), v1.clone())]);
    let worker = segmented_worker(&range_origin_bindings(&origin), MIB);
    let target = format!("/{NAR_KEY}");
    let mut checks = Checks::new();

    checks.check(
        "a Range stores the head and the first segment of v1",
        || {
            let r = get_raw(
                worker.port,
                &target,
                &[("Range", "bytes=0-99")],
                None,
                || {},
            );
            assert_eq!(r.status, 206);
            assert!(r.body == v1.bytes[..100]);
            assert!(
                worker.wait_for_log("stored segment 0 of 4", 1, Duration::from_secs(20)),
                "segment 0 was never stored"
            );
        },
    );

    origin.state.lock().unwrap().objects = vec![(NAR_KEY.into(), v2.clone())];

    checks.check(
        "the object changed: the client's transfer fails, no byte of v2 is spliced in",
        || {
            let before = origin.count();
            let r = get_raw(worker.port, &target, &[], None, || {});
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
            assert!(!r.complete, "a body of {} bytes looked whole", r.body.len());
            assert!(
                r.body.len() <= MIB as usize && r.body == v1.bytes[..r.body.len()],
                "{} bytes arrived, not a prefix of v1's first segment",
                r.body.len()
            );
            let asked = &origin.requests()[before..];
            assert_eq!(asked.len(), 1, "{:?}", ranges_asked(asked));
            assert_eq!(asked[0].header("if-match"), Some("\"v1\""));
        },
    );

    checks.check("the next request starts afresh and serves v2 whole", || {
        assert!(
            worker.wait_for_log("ETag differs", 1, Duration::from_secs(10)),
            "the mismatch was not logged"
        );
        // The head entry is dropped after the failed answer; wait for the new version.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let r = get_raw(worker.port, &target, &[], None, || {});
            if r.complete && r.status == 200 {
                assert!(r.body == *v2.bytes, "a complete body that is not v2");
                assert_eq!(r.header("etag"), Some("\"v2\""));
                break;
            }
            assert!(
                r.body == v1.bytes[..r.body.len()],
                "a cut body that is not a prefix of v1"
            );
            assert!(std::time::Instant::now() < deadline, "v2 never served");
        }
    });

    checks.finish(|| worker.process.log_tail());
}

#[test]
fn a_connection_dropped_mid_segment_fails_the_transfer_and_stores_nothing_partial() {
    let len = 3 * MIB as usize + 4096;
    let nar = object(len, 7, "\"abc\"");
    let origin = RangeOrigin::start(vec![(NAR_KEY.into(), nar.clone())]);
    origin.state.lock().unwrap().cut = Some((MIB, 300 * 1024));
    let worker = segmented_worker(&range_origin_bindings(&origin), MIB);
    let target = format!("/{NAR_KEY}");
    let mut checks = Checks::new();

    checks.check(
        "the client sees a transfer cut short, not a short 200",
        || {
            let r = get_raw(worker.port, &target, &[], None, || {});
            assert_eq!(r.status, 200);
            assert_eq!(r.header("content-length"), Some(len.to_string().as_str()));
            assert!(!r.complete, "{} bytes looked whole", r.body.len());
            assert!(r.body.len() < 2 * MIB as usize);
            assert!(
                r.body == nar.bytes[..r.body.len()],
                "wrong bytes before the cut"
            );
            assert!(
                worker.wait_for_log("stored segment 0 of 4", 1, Duration::from_secs(20)),
                "segment 0 was never stored"
            );
        },
    );

    origin.state.lock().unwrap().cut = None;

    checks.check(
        "next time: segment 0 from the edge, segment 1 asked again (what the Cache API kept \
         of it is seen short and dropped), the whole NAR served",
        || {
            let before = origin.count();
            let r = get_raw(worker.port, &target, &[], None, || {});
            assert_eq!(r.status, 200);
            assert!(
                r.complete,
                "{} of {} bytes; asked {:?}",
                r.body.len(),
                nar.bytes.len(),
                ranges_asked(&origin.requests()[before..])
            );
            assert!(r.body == *nar.bytes);
            assert_eq!(r.header("x-cache"), Some("HIT"));
            let asked = ranges_asked(&origin.requests()[before..]);
            let want: Vec<String> = (1..4)
                .map(|i| format!("GET {}", segment_range(i, MIB, len as u64)))
                .collect();
            assert_eq!(asked, want);
        },
    );

    checks.finish(|| worker.process.log_tail());
}
