use super::*;

const HASH: &str = "6b4ydhhzq1ysv6rq6gw8x2pqz2kkqiv1";
const FILE_HASH: &str = "1yq3brq3jnlg8dflhf5ks2d1pn5cfrg6s0p35ljqwjvyy7svn8dr";
const NAR_HASH: &str = "0lhwqb7dk2zd7wrjbgjb1x58mhphqcq8s6mfk0z1aaxy2d6pxc0h";

fn text() -> String {
    format!(
        "StorePath: /nix/store/{HASH}-seed-top\n\
         URL: nar/{FILE_HASH}.nar.xz\n\
         Compression: xz\n\
         FileHash: sha256:{FILE_HASH}\n\
         FileSize: 252\n\
         NarHash: sha256:{NAR_HASH}\n\
         NarSize: 480\n\
         References: 9bm5c8qhmbqwcz6ll6m9qljizwns1gqa-busybox 3nf4dlygcqwv0cdjpa1z4dbq2jvzb4gs-seed-mid\n\
         Deriver: 8yjc8b2x4c0q9ql7y3vnn3cxi9vjlazh-seed-top.drv\n"
    )
}

fn parse(text: &str) -> Result<NarInfo, NarInfoError> {
    NarInfo::parse(
        text.as_bytes(),
        &StorePathHash::parse(HASH).unwrap(),
        "/nix/store",
    )
}

#[test]
fn parses_what_nix_uploads() {
    let n = parse(&text()).unwrap();
    assert_eq!(n.store_path, format!("/nix/store/{HASH}-seed-top"));
    assert_eq!(n.compression, Compression::Xz);
    assert_eq!(n.file_size, 252);
    assert_eq!(n.nar_size, 480);
    assert_eq!(
        n.nar.object_key().unwrap(),
        format!("nar/{FILE_HASH}.nar.xz")
    );
    assert_eq!(n.references.len(), 2);
    assert!(n.sigs.is_empty());
    // References sorted by full path in the fingerprint.
    assert_eq!(
        n.fingerprint(),
        format!(
            "1;/nix/store/{HASH}-seed-top;sha256:{NAR_HASH};480;\
             /nix/store/3nf4dlygcqwv0cdjpa1z4dbq2jvzb4gs-seed-mid,\
             /nix/store/9bm5c8qhmbqwcz6ll6m9qljizwns1gqa-busybox"
        )
    );
}

#[test]
fn refusals() {
    let t = text();
    let swap = |from: &str, to: &str| t.replacen(from, to, 1);
    let cases: Vec<(&str, String, NarInfoError)> = vec![
        (
            "no StorePath",
            swap(&format!("StorePath: /nix/store/{HASH}-seed-top\n"), ""),
            NarInfoError::Missing("StorePath"),
        ),
        (
            "other store dir",
            swap("StorePath: /nix/store/", "StorePath: /gnu/store/"),
            invalid("StorePath", "not in this cache's store dir"),
        ),
        (
            "other hash",
            swap(
                &format!("StorePath: /nix/store/{HASH}"),
                "StorePath: /nix/store/0b4ydhhzq1ysv6rq6gw8x2pqz2kkqiv1",
            ),
            invalid(
                "StorePath",
                "its hash is not the one in the URL it was put at",
            ),
        ),
        (
            "bad name",
            swap("-seed-top\n", "-seed top\n"),
            invalid("StorePath", "not a store path"),
        ),
        (
            "URL not a NAR",
            swap("URL: nar/", "URL: log/"),
            invalid("URL", "not a NAR path"),
        ),
        (
            "URL escaping",
            swap("URL: nar/", "URL: ../nar/"),
            invalid("URL", "not a NAR path"),
        ),
        (
            "unknown compression",
            swap("Compression: xz", "Compression: rar"),
            invalid("Compression", "unknown compression"),
        ),
        (
            "compression mismatch",
            swap("Compression: xz", "Compression: zstd"),
            invalid("Compression", "does not match the URL's suffix"),
        ),
        (
            "no compression",
            swap("Compression: xz\n", ""),
            NarInfoError::Missing("Compression"),
        ),
        (
            "FileHash other",
            swap(
                &format!("FileHash: sha256:{FILE_HASH}"),
                &format!("FileHash: sha256:{NAR_HASH}"),
            ),
            invalid("FileHash", "does not match the URL"),
        ),
        (
            "FileHash hex",
            swap(
                &format!("FileHash: sha256:{FILE_HASH}"),
                "FileHash: sha256:abcd",
            ),
            invalid("FileHash", "expected sha256:<Nix base32>"),
        ),
        (
            "NarHash md5",
            swap("NarHash: sha256:", "NarHash: md5:"),
            invalid("NarHash", "expected sha256:<Nix base32>"),
        ),
        (
            "FileSize zero",
            swap("FileSize: 252", "FileSize: 0"),
            invalid("FileSize", "expected a size above zero"),
        ),
        (
            "FileSize negative",
            swap("FileSize: 252", "FileSize: -1"),
            invalid("FileSize", "expected a size above zero"),
        ),
        (
            "NarSize huge",
            swap("NarSize: 480", "NarSize: 99999999999999999999999"),
            invalid("NarSize", "expected a size above zero"),
        ),
        (
            "full reference path",
            swap("References: 9bm5", "References: /nix/store/9bm5"),
            invalid("References", "not bare store path names"),
        ),
        (
            "no References",
            swap("References: ", "Refs: "),
            NarInfoError::UnknownField("Refs".into()),
        ),
        (
            "Deriver not drv",
            swap("-seed-top.drv", "-seed-top"),
            invalid("Deriver", "not a derivation's store path name"),
        ),
        (
            "duplicate",
            format!("{t}NarSize: 480\n"),
            NarInfoError::Duplicate("NarSize".into()),
        ),
        (
            "unknown field",
            format!("{t}Evil: yes\n"),
            NarInfoError::UnknownField("Evil".into()),
        ),
        (
            "no colon",
            format!("{t}garbage\n"),
            NarInfoError::BadLine(10),
        ),
        (
            "bad sig",
            format!("{t}Sig: k:AAAA\n"),
            invalid("Sig", "expected name:base64 of 64 bytes"),
        ),
        (
            "control char",
            swap("Deriver: ", "Deriver: \u{7f}"),
            NarInfoError::BadLine(9),
        ),
        (
            "too large",
            format!("{t}{}", "\n".repeat(MAX_NARINFO_BYTES)),
            NarInfoError::TooLarge,
        ),
    ];
    for (name, text, want) in cases {
        assert_eq!(parse(&text), Err(want), "{name}");
    }
    assert_eq!(
        NarInfo::parse(
            b"\xff\xfe",
            &StorePathHash::parse(HASH).unwrap(),
            "/nix/store"
        ),
        Err(NarInfoError::NotText)
    );
}

#[test]
fn base32_round_trips_and_refuses_overflow() {
    let bytes: Vec<u8> = (0u8..32).map(|b| b.wrapping_mul(37)).collect();
    let s = encode_base32(&bytes);
    assert_eq!(s.len(), 52);
    assert_eq!(decode_base32(&s, 32), Some(bytes));
    // The first character carries only the top bit of the last byte.
    assert_eq!(decode_base32(&format!("2{}", "0".repeat(51)), 32), None);
    assert_eq!(decode_base32("0", 32), None);
    assert_eq!(decode_base32(&"e".repeat(52), 32), None);
    // sha256("") in Nix base32, as `nix hash to-base32` prints it.
    let empty = "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73";
    assert_eq!(
        nar_file_sha256_hex(&NarFileHash::parse(empty).unwrap()),
        crate::sigv4::EMPTY_SHA256
    );
}

#[test]
fn signs_once_per_key_name_and_keeps_others() {
    // A key made by ed25519 from a fixed seed, in Nix's secret key format.
    let seed = [7u8; 32];
    let dalek = ed25519_dalek::SigningKey::from_bytes(&seed);
    let secret = format!("test-1:{}", STANDARD.encode(dalek.to_keypair_bytes()));
    let key = SigningKey::parse(&secret).unwrap();
    assert!(!format!("{key:?}").contains(&secret[7..]));
    let public = key.public();
    assert_eq!(PublicKey::parse(&public.to_string()).unwrap(), public);

    let other = format!("other-1:{}", STANDARD.encode([1u8; 64]));
    let n = parse(&format!("{}Sig: {other}\n", text())).unwrap();
    let signed = n.with_signature(&key);
    assert!(signed.contains(&format!("Sig: {other}\n")));
    let again = parse(&signed).unwrap();
    assert_eq!(again.sigs.len(), 2);
    assert!(again.verify(&public));
    assert_eq!(again.with_signature(&key), signed, "signed once");
    // A signature over another fingerprint does not verify.
    let moved = signed.replace("NarSize: 480", "NarSize: 481");
    assert!(!parse(&moved).unwrap().verify(&public));
}

#[test]
fn key_formats() {
    let dalek = ed25519_dalek::SigningKey::from_bytes(&[9u8; 32]);
    let mut pair = dalek.to_keypair_bytes();
    assert!(SigningKey::parse(&format!("k:{}", STANDARD.encode(pair))).is_ok());
    pair[40] ^= 1;
    assert_eq!(
        SigningKey::parse(&format!("k:{}", STANDARD.encode(pair))).unwrap_err(),
        KeyError::Mismatch
    );
    for bad in [
        "",
        "k",
        "k:",
        ":AAAA",
        "k:!!!!",
        &format!("k:{}", STANDARD.encode([0u8; 32])),
    ] {
        assert_eq!(
            SigningKey::parse(bad).unwrap_err(),
            KeyError::Format,
            "{bad:?}"
        );
    }
}

/// A narinfo written and signed by Nix 2.8 (`nix copy --to file://…?secret-key=…` in
/// `scripts/seed-cache.sh`), with the public key of the throwaway key it was signed with.
const NIX_SIGNED: &str = "StorePath: /nix/store/nzpi9m84lghhlm4xwgvls1pi36axvx11-nix-spaces-cache-seed-top
URL: nar/0syzjx510fxfh6iyfsw53z29ag72kr9jgg91pa5h8j1a93a00b13.nar.xz
Compression: xz
FileHash: sha256:0syzjx510fxfh6iyfsw53z29ag72kr9jgg91pa5h8j1a93a00b13
FileSize: 308
NarHash: sha256:0v13zs5ksa8qvdm9i71i5ch11kkri7b2ikhsnmf2v6si21y2zdns
NarSize: 640
References: gnwriw8dnp33mxhqqmx3vbwgqv4p75nl-busybox s6ahqjngxxpcmiww3mhys49187q2gzcl-nix-spaces-cache-seed-mid
Deriver: 76bhaw794s3bzzkgzjhvp75h4qxzq1rx-nix-spaces-cache-seed-top.drv
Sig: nix-spaces-cache-local-1:bRbv5OAvSKtiiWdk5tnG8NeUPFJMeaGeOilfrENrESSHpWIxpVrMxfqlMJU43mqGisbxR5vXgFd0+9a5/gjoBw==
";
const NIX_PUBLIC_KEY: &str =
    "nix-spaces-cache-local-1:egWWCzDzx7Wytx6pVE86NLKfrRzRWNiJvc8ITf2LFvo=";

/// The same key signed a path without references and with a `CA` field.
const NIX_SIGNED_CA: &str = "StorePath: /nix/store/gnwriw8dnp33mxhqqmx3vbwgqv4p75nl-busybox
URL: nar/005s7jrm4xgv0si9wlq4pdq1c3jfh1xvzvs2p0qyx4v2d0s0vsf3.nar.xz
Compression: xz
FileHash: sha256:005s7jrm4xgv0si9wlq4pdq1c3jfh1xvzvs2p0qyx4v2d0s0vsf3
FileSize: 877684
NarHash: sha256:1sa9mdvjvgsarhb2h3lzlvllj0nilyqn9af4g5b4b43mvxv06194
NarSize: 1984080
References: 
Sig: nix-spaces-cache-local-1:smMD9Ma4BdO3OlIo/EO+oWKt5WU8qIM77WpaQNzRbZB2dvkWXwcszYx+9FE+FBpLLUB194QqjoG+q0zi1l6rAg==
CA: fixed:r:sha256:1sa9mdvjvgsarhb2h3lzlvllj0nilyqn9af4g5b4b43mvxv06194
";

#[test]
fn nix_s_own_signatures_verify_over_our_fingerprint() {
    let key = PublicKey::parse(NIX_PUBLIC_KEY).unwrap();
    assert_eq!(key.to_string(), NIX_PUBLIC_KEY);
    let top = NarInfo::parse(
        NIX_SIGNED.as_bytes(),
        &StorePathHash::parse("nzpi9m84lghhlm4xwgvls1pi36axvx11").unwrap(),
        "/nix/store",
    )
    .unwrap();
    assert_eq!(
        top.fingerprint(),
        "1;/nix/store/nzpi9m84lghhlm4xwgvls1pi36axvx11-nix-spaces-cache-seed-top;\
         sha256:0v13zs5ksa8qvdm9i71i5ch11kkri7b2ikhsnmf2v6si21y2zdns;640;\
         /nix/store/gnwriw8dnp33mxhqqmx3vbwgqv4p75nl-busybox,\
         /nix/store/s6ahqjngxxpcmiww3mhys49187q2gzcl-nix-spaces-cache-seed-mid"
    );
    assert!(top.signed_by("nix-spaces-cache-local-1"));
    assert!(
        top.verify(&key),
        "Nix's signature does not verify over our fingerprint"
    );
    let busybox = NarInfo::parse(
        NIX_SIGNED_CA.as_bytes(),
        &StorePathHash::parse("gnwriw8dnp33mxhqqmx3vbwgqv4p75nl").unwrap(),
        "/nix/store",
    )
    .unwrap();
    assert!(busybox.references.is_empty());
    assert!(busybox.verify(&key));
    // Any change to a signed field breaks it.
    let tampered = NIX_SIGNED.replace("NarSize: 640", "NarSize: 641");
    let tampered = NarInfo::parse(
        tampered.as_bytes(),
        &StorePathHash::parse("nzpi9m84lghhlm4xwgvls1pi36axvx11").unwrap(),
        "/nix/store",
    )
    .unwrap();
    assert!(!tampered.verify(&key));
    // The file hash in the name, decoded, is the SHA-256 of the file (`sha256sum` of that
    // NAR, and `nix hash to-base16`).
    assert_eq!(
        nar_file_sha256_hex(
            &NarFileHash::parse("0syzjx510fxfh6iyfsw53z29ag72kr9jgg91pa5h8j1a93a00b13").unwrap()
        ),
        "232c00d4482a48048bba21bd27539ee23c95c41f856be7a381ae3b104a97df6b"
    );
}
