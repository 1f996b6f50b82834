//! The route parser and the cache policy, by tables and by properties.

use nix_spaces_cache::nix::{
    CacheInfo, Compression, NarFileHash, ObjectKind, Route, RouteError, StorePathHash,
    StorePathName, MAX_PATH_LEN, NIX_BASE32_ALPHABET,
};
use nix_spaces_cache::policy::{
    cache_control, classify_origin, pass_request_header, pass_response_header, s3_error_code,
    storable, FailReason, OriginVerdict, Ttls, ALLOW, EDGE_OBJECT_LIMIT,
};
use proptest::prelude::*;

const H32: &str = "jn6wiy4rxkfv62gas26kiggypxrnc1p4";
const H52: &str = "0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs";
const HEX64: &str = "c0ffee00112233445566778899aabbccddeeff00112233445566778899aabbcc";

fn hash32() -> StorePathHash {
    StorePathHash::parse(H32).unwrap()
}

fn drv(name: &str) -> StorePathName {
    StorePathName::parse(&format!("{H32}-{name}")).unwrap()
}

// ------------------------------------------------------------------------------------------
// Tables
// ------------------------------------------------------------------------------------------

#[test]
fn every_route_in_the_design_parses() {
    let nar = |c| Route::Nar {
        hash: NarFileHash::parse(H52).unwrap(),
        compression: c,
    };
    let table: Vec<(String, Route, Option<String>, ObjectKind, &str)> = vec![
        (
            "/".into(),
            Route::Landing,
            None,
            ObjectKind::Landing,
            "text/html; charset=utf-8",
        ),
        (
            "/nix-cache-info".into(),
            Route::CacheInfo,
            None,
            ObjectKind::CacheInfo,
            "text/x-nix-cache-info",
        ),
        (
            format!("/{H32}.narinfo"),
            Route::NarInfo(hash32()),
            Some(format!("{H32}.narinfo")),
            ObjectKind::NarInfo,
            "text/x-nix-narinfo",
        ),
        (
            format!("/{H32}.ls"),
            Route::Listing(hash32()),
            Some(format!("{H32}.ls")),
            ObjectKind::Listing,
            "application/json",
        ),
        (
            format!("/log/{H32}-hello-2.12.1.drv"),
            Route::Log(drv("hello-2.12.1.drv")),
            Some(format!("log/{H32}-hello-2.12.1.drv")),
            ObjectKind::Log,
            "text/plain; charset=utf-8",
        ),
        (
            "/debuginfo/0a1b2c3d4e5f60718293a4b5c6d7e8f901234567".into(),
            Route::DebugInfo("0a1b2c3d4e5f60718293a4b5c6d7e8f901234567".into()),
            Some("debuginfo/0a1b2c3d4e5f60718293a4b5c6d7e8f901234567".into()),
            ObjectKind::DebugInfo,
            "application/json",
        ),
        (
            format!("/realisations/sha256:{HEX64}!out.doi"),
            Route::Realisation {
                drv_hash: format!("sha256:{HEX64}"),
                output: "out".into(),
            },
            Some(format!("realisations/sha256:{HEX64}!out.doi")),
            ObjectKind::Realisation,
            "application/json",
        ),
        (
            format!("/build-trace-v2/{H32}-hello-2.12.1.drv/dev.doi"),
            Route::BuildTrace {
                drv: drv("hello-2.12.1.drv"),
                output: "dev".into(),
            },
            Some(format!("build-trace-v2/{H32}-hello-2.12.1.drv/dev.doi")),
            ObjectKind::Realisation,
            "application/json",
        ),
    ];
    let mut table = table;
    for c in Compression::ALL {
        table.push((
            format!("/nar/{H52}.nar{}", c.suffix()),
            nar(c),
            Some(format!("nar/{H52}.nar{}", c.suffix())),
            ObjectKind::Nar,
            "application/x-nix-nar",
        ));
    }
    for (path, route, key, kind, content_type) in table {
        let parsed = Route::parse(&path).unwrap_or_else(|e| panic!("{path}: {e:?}"));
        assert_eq!(parsed, route, "{path}");
        assert_eq!(parsed.object_key(), key, "{path}");
        assert_eq!(parsed.kind(), kind, "{path}");
        assert_eq!(parsed.content_type(), content_type, "{path}");
        assert_eq!(parsed.path(), path, "{path}");
    }
}

#[test]
fn nar_suffixes_are_the_known_ones() {
    let suffixes: Vec<&str> = Compression::ALL.iter().map(|c| c.suffix()).collect();
    assert_eq!(
        suffixes,
        ["", ".xz", ".zst", ".bz2", ".br", ".lz4", ".lzip", ".gz"]
    );
}

#[test]
fn bad_paths_are_refused_with_the_right_status() {
    use RouteError::*;
    let h31 = &H32[1..];
    let ten_kb = format!("/{}", "a".repeat(10 * 1024));
    let long_narinfo = format!("/{}{H32}.narinfo", "/".repeat(MAX_PATH_LEN));
    let cases: Vec<(String, RouteError)> = vec![
        // traversal and dot segments
        ("/nar/../x".into(), NotFound),
        ("/..".into(), NotFound),
        ("/.".into(), NotFound),
        (format!("/nar/./{H52}.nar"), NotFound),
        (format!("/nar/../{H32}.narinfo"), NotFound),
        (format!("/log/../{H32}.narinfo"), NotFound),
        // percent-encoding, never decoded
        ("/%2e%2e/".into(), BadEncoding),
        ("/nar/%2E%2E".into(), BadEncoding),
        (format!("/nar%2F{H52}.nar"), BadEncoding),
        (format!("/{H32}%2enarinfo"), BadEncoding),
        (format!("/{H32}.narinfo%00"), BadEncoding),
        // control and non-ASCII bytes
        (format!("/{H32}.narinfo\n"), BadEncoding),
        (format!("/{H32}.narinfo\0"), BadEncoding),
        (format!("/{h31}\u{e9}.narinfo"), BadEncoding),
        ("/\u{7f}".into(), BadEncoding),
        // bad hash letters and lengths
        (format!("/{h31}e.narinfo"), NotFound),
        (format!("/{h31}o.narinfo"), NotFound),
        (format!("/{h31}t.narinfo"), NotFound),
        (format!("/{h31}u.narinfo"), NotFound),
        (format!("/{}.narinfo", H32.to_uppercase()), NotFound),
        (format!("/{h31}.narinfo"), NotFound),
        (format!("/{H32}a.narinfo"), NotFound),
        (format!("/nar/{}.nar", &H52[1..]), NotFound),
        (format!("/nar/{H52}a.nar"), NotFound),
        (format!("/nar/{}e.nar.xz", &H52[1..]), NotFound),
        (format!("/nar/{H32}.nar"), NotFound),
        (format!("/{}.ls", &H52[..32].replace('0', "E")), NotFound),
        // lengths
        (ten_kb, TooLong),
        (long_narinfo, TooLong),
        // unknown suffixes and extra segments
        (format!("/nar/{H52}.nar.rar"), NotFound),
        (format!("/nar/{H52}.nar.XZ"), NotFound),
        (format!("/nar/{H52}.nar."), NotFound),
        (format!("/nar/{H52}.narinfo"), NotFound),
        (format!("/nar/{H52}"), NotFound),
        (format!("/nar/{H52}.nar.xz/extra"), NotFound),
        (format!("/{H32}.narinfo/"), NotFound),
        (format!("/{H32}.NARINFO"), NotFound),
        (format!("/{H32}.nar"), NotFound),
        (format!("/{H32}"), NotFound),
        (format!("/{H32}.narinfo.xz"), NotFound),
        (format!("/nar/{H32}.narinfo"), NotFound),
        (format!("/foo/{H32}.narinfo"), NotFound),
        // double slashes and trailing slashes
        (format!("//{H32}.narinfo"), NotFound),
        (format!("/nar//{H52}.nar"), NotFound),
        ("//".into(), NotFound),
        ("/nix-cache-info/".into(), NotFound),
        ("/nix-cache-info//".into(), NotFound),
        ("/nar/".into(), NotFound),
        ("/nar".into(), NotFound),
        // not absolute
        ("".into(), NotFound),
        ("nix-cache-info".into(), NotFound),
        (format!("{H32}.narinfo"), NotFound),
        // other case
        ("/NIX-CACHE-INFO".into(), NotFound),
        ("/index.html".into(), NotFound),
        ("/favicon.ico".into(), NotFound),
        // logs need a derivation
        ("/log/".into(), NotFound),
        (format!("/log/{H32}-hello-2.12.1"), NotFound),
        (format!("/log/{H32}-.drv"), NotFound),
        (format!("/log/{H32}.drv"), NotFound),
        (format!("/log/{h31}e-hello.drv"), NotFound),
        (format!("/log/{H32}-hel lo.drv"), NotFound),
        (format!("/log/{H32}-hello.drv/x"), NotFound),
        (format!("/log/{H32}-{}.drv", "a".repeat(208)), NotFound),
        // debug info build ids
        ("/debuginfo/".into(), NotFound),
        ("/debuginfo/abc".into(), NotFound),
        ("/debuginfo/ABCD".into(), NotFound),
        ("/debuginfo/zz".into(), NotFound),
        (format!("/debuginfo/{}", "ab".repeat(65)), NotFound),
        ("/debuginfo/ab/cd".into(), NotFound),
        // realisations
        (
            format!("/realisations/sha256:{}!out.doi", &HEX64[1..]),
            NotFound,
        ),
        (
            format!("/realisations/sha256:{}g!out.doi", &HEX64[1..]),
            NotFound,
        ),
        (
            format!("/realisations/sha256:{}!out.doi", HEX64.to_uppercase()),
            NotFound,
        ),
        (format!("/realisations/sha512:{HEX64}!out.doi"), NotFound),
        (format!("/realisations/{HEX64}!out.doi"), NotFound),
        (format!("/realisations/sha256:{HEX64}!.doi"), NotFound),
        (format!("/realisations/sha256:{HEX64}!.out.doi"), NotFound),
        (format!("/realisations/sha256:{HEX64}!out"), NotFound),
        (
            format!("/realisations/sha256:{HEX64}!out!dev.doi"),
            NotFound,
        ),
        (format!("/realisations/sha256:{HEX64}out.doi"), NotFound),
        (format!("/realisations/sha256:{H52}!out.doi"), NotFound),
        // build traces
        (format!("/build-trace-v2/{H32}-hello.drv/.doi"), NotFound),
        (format!("/build-trace-v2/{H32}-hello/out.doi"), NotFound),
        (format!("/build-trace-v2/{H32}-hello.drv/out"), NotFound),
        (format!("/build-trace-v2/{H32}-hello.drv"), NotFound),
        (
            format!("/build-trace-v2/{H32}-hello.drv/out.doi/x"),
            NotFound,
        ),
        (format!("/build-trace-v1/{H32}-hello.drv/out.doi"), NotFound),
        // characters outside the grammar
        (format!("/{H32}.narinfo?hash=x"), NotFound),
        (format!("/{H32}.narinfo#x"), NotFound),
        (format!("/{H32}.narinfo "), NotFound),
        (format!("/nar\\{H52}.nar"), NotFound),
        (format!("/log/{H32}-a;b.drv"), NotFound),
    ];
    for (path, expected) in cases {
        let shown: String = path.chars().take(80).collect();
        assert_eq!(Route::parse(&path), Err(expected), "{shown:?}");
    }
}

#[test]
fn route_errors_are_4xx_with_short_messages() {
    assert_eq!(RouteError::TooLong.status(), 414);
    assert_eq!(RouteError::BadEncoding.status(), 400);
    assert_eq!(RouteError::NotFound.status(), 404);
    for e in [
        RouteError::TooLong,
        RouteError::BadEncoding,
        RouteError::NotFound,
    ] {
        assert!(!e.message().is_empty() && e.message().len() < 100);
        assert!(!e.message().contains('\n'));
    }
}

#[test]
fn path_length_limit_is_exact() {
    let base = format!("/debuginfo/{}", "ab".repeat(64));
    assert!(Route::parse(&base).is_ok());
    let at_limit = format!("/{}", "a".repeat(MAX_PATH_LEN - 1));
    assert_eq!(Route::parse(&at_limit), Err(RouteError::NotFound));
    let over = format!("/{}", "a".repeat(MAX_PATH_LEN));
    assert_eq!(Route::parse(&over), Err(RouteError::TooLong));
}

#[test]
fn names_use_the_whole_store_name_grammar() {
    let name = "A-z_0.9+x?y=z.drv";
    let route = Route::parse(&format!("/log/{H32}-{name}")).unwrap();
    assert_eq!(route, Route::Log(drv(name)));
    let longest = format!("{}.drv", "a".repeat(207));
    assert!(Route::parse(&format!("/log/{H32}-{longest}")).is_ok());
    let output = "out.doi";
    let route = Route::parse(&format!("/realisations/sha256:{HEX64}!{output}.doi")).unwrap();
    assert_eq!(
        route.path(),
        format!("/realisations/sha256:{HEX64}!out.doi.doi")
    );
}

#[test]
fn cache_info_renders_like_nix_writes_it() {
    assert_eq!(
        CacheInfo::default().render(),
        "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
    );
}

// ------------------------------------------------------------------------------------------
// Policy tables
// ------------------------------------------------------------------------------------------

#[test]
fn origin_answers_map_to_the_design_statuses() {
    use FailReason::*;
    use OriginVerdict::*;
    let cases: &[(u16, Option<&str>, OriginVerdict)] = &[
        (200, None, Pass),
        (206, None, Pass),
        (304, None, Pass),
        (204, None, Pass),
        (416, None, Pass),
        (416, Some("InvalidRange"), Pass),
        (404, None, Missing),
        (404, Some("NoSuchKey"), Missing),
        (403, Some("AccessDenied"), Missing),
        (403, Some("NoSuchKey"), Missing),
        (404, Some("NoSuchBucket"), Fail(NoSuchBucket)),
        (403, Some("NoSuchBucket"), Fail(NoSuchBucket)),
        (
            403,
            Some("SignatureDoesNotMatch"),
            Fail(BadCredentials("SignatureDoesNotMatch")),
        ),
        (
            403,
            Some("InvalidAccessKeyId"),
            Fail(BadCredentials("InvalidAccessKeyId")),
        ),
        (
            403,
            Some("RequestTimeTooSkewed"),
            Fail(BadCredentials("RequestTimeTooSkewed")),
        ),
        (
            403,
            Some("AllAccessDisabled"),
            Fail(Forbidden(Some("AllAccessDisabled".into()))),
        ),
        (403, None, Fail(Forbidden(None))),
        (500, None, Fail(OriginError(500))),
        (500, Some("InternalError"), Fail(OriginError(500))),
        (502, None, Fail(OriginError(502))),
        (503, Some("SlowDown"), Fail(OriginError(503))),
        (504, None, Fail(OriginError(504))),
        (400, Some("InvalidRequest"), Fail(Unexpected(400))),
        (400, None, Fail(Unexpected(400))),
        (401, None, Fail(Unexpected(401))),
        (405, None, Fail(Unexpected(405))),
        (409, None, Fail(Unexpected(409))),
        (412, None, Fail(Unexpected(412))),
        (301, None, Fail(Unexpected(301))),
        (307, None, Fail(Unexpected(307))),
        (100, None, Fail(Unexpected(100))),
    ];
    for (status, code, verdict) in cases {
        assert_eq!(
            &classify_origin(*status, *code),
            verdict,
            "{status} {code:?}"
        );
    }
}

#[test]
fn credential_failures_name_the_code() {
    for code in [
        "SignatureDoesNotMatch",
        "InvalidAccessKeyId",
        "RequestTimeTooSkewed",
    ] {
        let OriginVerdict::Fail(reason) = classify_origin(403, Some(code)) else {
            panic!("{code} must fail");
        };
        assert_eq!(
            reason.message(),
            format!("origin rejected the Worker's credentials ({code})")
        );
    }
    let OriginVerdict::Fail(reason) = classify_origin(503, None) else {
        panic!("503 must fail");
    };
    assert_eq!(reason.message(), "origin answered 503");
    assert_eq!(FailReason::Unreachable.message(), "origin unreachable");
}

#[test]
fn s3_error_bodies() {
    let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated does not match</Message><RequestId>tx0000</RequestId></Error>"#;
    assert_eq!(s3_error_code(body), Some("SignatureDoesNotMatch"));
    assert_eq!(
        classify_origin(403, s3_error_code(body)),
        OriginVerdict::Fail(FailReason::BadCredentials("SignatureDoesNotMatch"))
    );
    let garbage = "<html><body>403 Forbidden</body></html>";
    assert_eq!(s3_error_code(garbage), None);
    assert_eq!(
        classify_origin(403, s3_error_code(garbage)),
        OriginVerdict::Fail(FailReason::Forbidden(None))
    );
}

#[test]
fn cache_control_by_kind_and_status() {
    let t = Ttls::default();
    use ObjectKind::*;
    let cases: &[(ObjectKind, u16, &str)] = &[
        (Nar, 200, "public, max-age=31536000, immutable"),
        (Nar, 206, "public, max-age=31536000, immutable"),
        (NarInfo, 200, "public, max-age=86400"),
        (Realisation, 200, "public, max-age=86400"),
        (Listing, 200, "public, max-age=3600"),
        (Log, 200, "public, max-age=3600"),
        (DebugInfo, 200, "public, max-age=3600"),
        (CacheInfo, 200, "public, max-age=3600"),
        (Landing, 200, "public, max-age=300"),
        (NarInfo, 404, "public, max-age=60"),
        (Nar, 404, "public, max-age=60"),
        (Nar, 502, "no-store"),
        (NarInfo, 500, "no-store"),
        (NarInfo, 503, "no-store"),
        (Nar, 416, "no-store"),
        (Nar, 400, "no-store"),
    ];
    for (kind, status, expected) in cases {
        assert_eq!(
            cache_control(*kind, *status, &t),
            *expected,
            "{kind:?} {status}"
        );
    }
    let custom = Ttls {
        nar: 7,
        narinfo: 8,
        negative: 9,
        other: 10,
    };
    assert_eq!(
        cache_control(Nar, 200, &custom),
        "public, max-age=7, immutable"
    );
    assert_eq!(cache_control(NarInfo, 200, &custom), "public, max-age=8");
    assert_eq!(cache_control(NarInfo, 404, &custom), "public, max-age=9");
    assert_eq!(cache_control(Log, 200, &custom), "public, max-age=10");
}

#[test]
fn what_the_edge_stores() {
    use ObjectKind::*;
    let l = EDGE_OBJECT_LIMIT;
    let cases: &[(ObjectKind, u16, Option<u64>, bool)] = &[
        (Nar, 200, Some(1), true),
        (Nar, 200, Some(0), true),
        (Nar, 200, Some(l), true),
        (Nar, 200, Some(l + 1), false),
        (Nar, 200, None, false),
        (Nar, 206, Some(10), false),
        (Nar, 304, Some(0), false),
        (Nar, 416, Some(0), false),
        (Nar, 502, Some(10), false),
        (Nar, 500, Some(10), false),
        (NarInfo, 200, Some(500), true),
        (NarInfo, 404, Some(0), true),
        (NarInfo, 404, None, true),
        (Nar, 404, Some(0), true),
        (Listing, 404, Some(0), true),
        (Log, 200, Some(5), true),
        (DebugInfo, 200, Some(5), true),
        (Realisation, 404, Some(0), true),
        (Landing, 200, Some(100), false),
        (Landing, 404, Some(0), false),
        (CacheInfo, 200, Some(50), false),
        (CacheInfo, 404, Some(0), false),
    ];
    for (kind, status, len, expected) in cases {
        assert_eq!(
            storable(*kind, *status, *len, l),
            *expected,
            "{kind:?} {status} {len:?}"
        );
    }
    assert!(!storable(Nar, 200, Some(11), 10));
    assert!(storable(Nar, 200, Some(10), 10));
}

#[test]
fn headers_that_cross_the_worker() {
    for name in [
        "content-type",
        "Content-Length",
        "ETag",
        "last-modified",
        "Accept-Ranges",
        "content-range",
    ] {
        assert!(pass_response_header(name), "{name}");
    }
    for name in [
        "x-amz-request-id",
        "x-amz-id-2",
        "x-amz-meta-secret",
        "set-cookie",
        "server",
        "authorization",
        "x-amz-version-id",
        "strict-transport-security",
        "cache-control",
        "",
    ] {
        assert!(!pass_response_header(name), "{name}");
    }
    assert!(pass_request_header("range"));
    assert!(pass_request_header("Range"));
    for name in [
        "authorization",
        "Authorization",
        "cookie",
        "host",
        "x-amz-date",
        "x-amz-security-token",
        "if-none-match",
        "if-modified-since",
        "cf-connecting-ip",
        "x-forwarded-for",
    ] {
        assert!(!pass_request_header(name), "{name}");
    }
    assert_eq!(ALLOW, "GET, HEAD");
}

// ------------------------------------------------------------------------------------------
// Properties
// ------------------------------------------------------------------------------------------

/// Every byte any accepted path may hold.
const PATH_ALPHABET: &str =
    "/abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-._?=:!";

fn base32(len: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        proptest::sample::select(NIX_BASE32_ALPHABET.as_bytes()),
        len,
    )
    .prop_map(|b| String::from_utf8(b).unwrap())
}

fn name_strategy(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[A-Za-z0-9+\\-_?=][A-Za-z0-9+\\-._?=]{{0,{max}}}"))
        .unwrap()
}

fn drv_strategy() -> impl Strategy<Value = StorePathName> {
    (base32(32), name_strategy(40))
        .prop_map(|(h, n)| StorePathName::parse_drv(&format!("{h}-{n}.drv")).unwrap())
}

fn route_strategy() -> impl Strategy<Value = Route> {
    prop_oneof![
        Just(Route::Landing),
        Just(Route::CacheInfo),
        base32(32).prop_map(|h| Route::NarInfo(StorePathHash::parse(&h).unwrap())),
        base32(32).prop_map(|h| Route::Listing(StorePathHash::parse(&h).unwrap())),
        (
            base32(52),
            proptest::sample::select(Compression::ALL.to_vec())
        )
            .prop_map(|(h, c)| {
                Route::Nar {
                    hash: NarFileHash::parse(&h).unwrap(),
                    compression: c,
                }
            }),
        drv_strategy().prop_map(Route::Log),
        (1usize..=64)
            .prop_flat_map(
                |n| proptest::string::string_regex(&format!("[0-9a-f]{{{}}}", 2 * n)).unwrap()
            )
            .prop_map(Route::DebugInfo),
        (
            proptest::string::string_regex("[0-9a-f]{64}").unwrap(),
            name_strategy(20)
        )
            .prop_map(|(hex, output)| Route::Realisation {
                drv_hash: format!("sha256:{hex}"),
                output,
            }),
        (drv_strategy(), name_strategy(20))
            .prop_map(|(drv, output)| Route::BuildTrace { drv, output }),
    ]
}

/// Strings that look like cache paths: the path alphabet plus a few troublemakers.
fn pathlike() -> impl Strategy<Value = String> {
    proptest::string::string_regex(
        "/?([a-z0-9./%!:-]|nar|narinfo|log|\\.\\.|sha256:|\\.doi|\\.drv){0,40}",
    )
    .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn no_input_panics(s in any::<String>()) {
        let _ = Route::parse(&s);
    }

    #[test]
    fn no_pathlike_input_panics_and_accepted_ones_round_trip(s in pathlike()) {
        if let Ok(route) = Route::parse(&s) {
            prop_assert_eq!(route.path(), s.clone());
            prop_assert_eq!(Route::parse(&route.path()), Ok(route));
        }
    }

    #[test]
    fn generated_routes_parse_and_round_trip(route in route_strategy()) {
        let path = route.path();
        prop_assert_eq!(Route::parse(&path), Ok(route.clone()));
        match route.object_key() {
            Some(key) => prop_assert_eq!(format!("/{key}"), path.clone()),
            None => prop_assert!(matches!(route, Route::Landing | Route::CacheInfo)),
        }
        // Nothing the parser accepts leaves the key space: no dot segments, no empty segments.
        for segment in path[1..].split('/') {
            prop_assert!(segment != "." && segment != "..");
            if route != Route::Landing {
                prop_assert!(!segment.is_empty());
            }
        }
    }

    #[test]
    fn a_char_outside_the_grammar_anywhere_is_refused(
        route in route_strategy(),
        at in any::<proptest::sample::Index>(),
        c in any::<char>().prop_filter("outside the path alphabet", |c| !PATH_ALPHABET.contains(*c)),
    ) {
        let path = route.path();
        let at = at.index(path.len() + 1);
        let mut bad = path.clone();
        bad.insert(at, c);
        prop_assert!(Route::parse(&bad).is_err(), "{:?}", bad);
    }

    #[test]
    fn slashes_and_dot_segments_added_are_refused(route in route_strategy(), tail in prop_oneof![
        Just("/"), Just("/."), Just("/.."), Just("//"), Just("/./x"), Just("/../x")
    ]) {
        let bad = format!("{}{tail}", route.path());
        prop_assert!(Route::parse(&bad).is_err(), "{:?}", bad);
        let bad = format!("/{}", route.path());
        prop_assert_eq!(Route::parse(&bad), Err(RouteError::NotFound));
    }

    #[test]
    fn a_bad_hash_letter_is_refused(
        hash in base32(32),
        at in 0usize..32,
        c in proptest::sample::select(b"eotuABCDEFGHIJKLMNOPQRSTUVWXYZ".to_vec()),
        listing in any::<bool>(),
    ) {
        let mut bytes = hash.into_bytes();
        bytes[at] = c;
        let hash = String::from_utf8(bytes).unwrap();
        let path = if listing { format!("/{hash}.ls") } else { format!("/{hash}.narinfo") };
        prop_assert_eq!(Route::parse(&path), Err(RouteError::NotFound));
        let nar = format!("/nar/{hash}{}.nar", &H52[32..]);
        prop_assert_eq!(Route::parse(&nar), Err(RouteError::NotFound));
    }

    #[test]
    fn wrong_hash_lengths_are_refused(len in 0usize..80) {
        let hash: String = NIX_BASE32_ALPHABET.chars().cycle().take(len).collect();
        let narinfo = Route::parse(&format!("/{hash}.narinfo"));
        prop_assert_eq!(narinfo.is_ok(), len == 32);
        let nar = Route::parse(&format!("/nar/{hash}.nar.xz"));
        prop_assert_eq!(nar.is_ok(), len == 52);
    }

    #[test]
    fn percent_anywhere_is_bad_encoding(route in route_strategy(), at in any::<proptest::sample::Index>(), hex in "[0-9a-fA-F]{2}") {
        let path = route.path();
        let mut bad = path.clone();
        bad.insert_str(at.index(path.len() + 1), &format!("%{hex}"));
        prop_assert_eq!(Route::parse(&bad), Err(RouteError::BadEncoding));
    }

    #[test]
    fn long_paths_are_too_long(extra in 1usize..20_000) {
        let path = format!("/{}", "a".repeat(MAX_PATH_LEN - 1 + extra));
        prop_assert_eq!(Route::parse(&path), Err(RouteError::TooLong));
    }

    #[test]
    fn every_origin_status_has_a_verdict_and_failures_are_never_stored(
        status in 100u16..600,
        code in proptest::option::of("[A-Za-z]{1,30}"),
        kind in proptest::sample::select(vec![
            ObjectKind::Nar, ObjectKind::NarInfo, ObjectKind::Listing, ObjectKind::Log,
            ObjectKind::DebugInfo, ObjectKind::Realisation,
        ]),
    ) {
        let verdict = classify_origin(status, code.as_deref());
        if let OriginVerdict::Fail(reason) = &verdict {
            prop_assert!(!reason.message().is_empty());
            prop_assert!(!storable(kind, 502, Some(0), EDGE_OBJECT_LIMIT));
            prop_assert_eq!(cache_control(kind, 502, &Ttls::default()), "no-store");
        }
        if (500..600).contains(&status) {
            prop_assert!(matches!(verdict, OriginVerdict::Fail(_)));
            prop_assert!(!storable(kind, status, Some(0), EDGE_OBJECT_LIMIT));
        }
        if (200..300).contains(&status) {
            prop_assert_eq!(verdict, OriginVerdict::Pass);
        }
    }

    #[test]
    fn s3_error_code_never_panics_and_returns_a_clean_code(body in any::<String>(), code in "[A-Za-z0-9]{1,64}") {
        if let Some(found) = s3_error_code(&body) {
            prop_assert!(found.bytes().all(|b| b.is_ascii_alphanumeric()));
        }
        let wrapped = format!("{body}<Code>{code}</Code>");
        if !body.contains("<Code>") {
            prop_assert_eq!(s3_error_code(&wrapped), Some(code.as_str()));
        }
    }
}
