//! The test peers on their own: the cache that `scripts/seed-cache.sh` makes with the Nix
//! client is real, signed and complete, and `s3s-fs` behind the counting proxy refuses
//! unsigned requests.

mod support;

use std::os::unix::fs::PermissionsExt;

use support::{http, seed, NixEnv, S3Origin, Seed};

#[test]
fn seeded_cache_is_a_signed_closure_with_references() {
    let seed = seed();
    assert_eq!(seed.closure.len(), 4, "closure: {:?}", seed.closure);
    assert!(seed.closure.contains(&seed.top_path));
    assert!(
        seed.public_key.starts_with("nix-spaces-cache-local-1:"),
        "public key {}",
        seed.public_key
    );

    // top -> mid -> leaf, and every path of the closure has a narinfo and a NAR.
    let top = seed.narinfo(&seed.top_path);
    assert!(!top.references.is_empty(), "top has no references");
    let mid = seed
        .closure
        .iter()
        .find(|p| p.ends_with("-nix-spaces-cache-seed-mid"))
        .expect("mid in closure");
    let mid_base = mid.rsplit('/').next().unwrap();
    assert!(top.references.iter().any(|r| r == mid_base), "{top:?}");
    let mid_info = seed.narinfo(mid);
    assert!(
        mid_info
            .references
            .iter()
            .any(|r| r.ends_with("-nix-spaces-cache-seed-leaf")),
        "{mid_info:?}"
    );
    for path in &seed.closure {
        let info = seed.narinfo(path);
        let nar = seed.cache.join(&info.url);
        assert_eq!(
            std::fs::metadata(&nar).expect("NAR file").len(),
            info.file_size,
            "{}",
            nar.display()
        );
        let text = std::fs::read_to_string(seed.narinfo_file(path)).unwrap();
        assert!(
            text.contains("\nSig: nix-spaces-cache-local-1:"),
            "unsigned: {text}"
        );
    }

    // The large path's NAR is over 64 MiB and stored uncompressed.
    let large = seed.narinfo(&seed.large_path);
    assert!(large.url.ends_with(".nar"), "{}", large.url);
    assert!(large.file_size >= 64 * 1024 * 1024, "{}", large.file_size);

    // The secret key is next to the cache, not in it, and only its owner can read it.
    let meta = seed.cache.parent().unwrap().join("meta");
    let mode = std::fs::metadata(meta.join("secret-key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "secret key mode {mode:o}");
    assert!(!seed.cache.join("secret-key").exists());
}

#[test]
fn nix_substitutes_the_seeded_cache_from_a_file_store() {
    let seed = seed();
    let nix = NixEnv::new();
    let from = format!("file://{}", seed.cache.display());
    nix.copy_seeded_closure(&from, seed);

    // With another key trusted, the same cache is refused.
    let other = NixEnv::new();
    let (ok, _, err) = other.run(&[
        "copy",
        "--from",
        &from,
        "--option",
        "trusted-public-keys",
        "nix-spaces-cache-local-1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        &seed.top_path,
    ]);
    assert!(!ok, "copy with the wrong trusted key succeeded");
    assert!(err.contains("lacks a valid signature"), "{err}");
}

#[test]
fn s3s_fs_refuses_unsigned_requests_and_the_proxy_counts_them() {
    let seed = seed();
    let origin = S3Origin::start(&seed.cache, "nix-cache");
    assert_eq!(origin.proxy.count(), 0);
    let target = format!("/nix-cache/{}.narinfo", Seed::hash_of(&seed.top_path));
    let response = http::request(origin.proxy.port, "GET", &target, &[("x-test", "1")]);
    assert!(
        (400..500).contains(&response.status),
        "unsigned GET answered {}: {}",
        response.status,
        response.text()
    );
    let requests = origin.proxy.requests();
    assert_eq!(requests.len(), 1, "{requests:?}");
    assert_eq!(requests[0].method, "GET");
    assert_eq!(requests[0].target, target);
    assert_eq!(requests[0].header("x-test"), Some("1"));
}
