//! What gc reads out of the objects it must open: a narinfo's NAR and references, a debug-info
//! file's archive, a realisation's output path.
//!
//! Lenient where Nix is lenient (unknown fields, any order, trailing spaces), strict where a
//! wrong reading would delete something still needed: a narinfo without a `StorePath`, a `URL`
//! or a `NarHash` cannot be read, and an object that cannot be read is kept, never deleted.
//!
//! A real narinfo, as `nix copy --to file://…` writes it:
//!
//! ```text
//! StorePath: /nix/store/jn6wiy4rxkfv62gas26kiggypxrnc1p4-hello.txt
//! URL: nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar.xz
//! Compression: xz
//! FileHash: sha256:0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs
//! FileSize: 136
//! NarHash: sha256:1hnjs9cv6ly002ckyighzdrj265xy72dcrjv1bv8skzb3h4bgb42
//! NarSize: 128
//! References: 3n58xw4373jp0ljirf06d8077j15pc4j-glibc-2.37-8 jn6wiy4rxkfv62gas26kiggypxrnc1p4-hello.txt
//! Deriver: 5c2gg8r1g2n6a5s0k2w0b3gzdkdvaf0a-hello.txt.drv
//! ```

use nix_spaces_cache::nix::{Route, StorePathName};

/// What gc needs from a narinfo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NarInfoFacts {
    /// The store path hash the narinfo describes (from `StorePath`).
    pub hash: String,
    /// The key of its NAR in the bucket (`URL`, e.g. `nar/<filehash>.nar.xz`).
    pub nar_key: String,
    /// The store path hashes of its references (itself included when it refers to itself).
    pub references: Vec<String>,
    /// The base name of its deriver (`<hash>-<name>.drv`), whose build log is `log/<deriver>`.
    pub deriver: Option<String>,
}

/// Why an object could not be read; the object is then kept and reported.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Unreadable {
    #[error("missing field {0}")]
    Missing(&'static str),
    #[error("field {0} is not valid")]
    Invalid(&'static str),
    #[error("not UTF-8 text")]
    NotText,
    #[error("not JSON of the expected shape")]
    NotJson,
}

/// The base name of a store path given in full (`/nix/store/<hash>-<name>`) or as a base name.
fn base_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Reads a narinfo's text. `URL` must name a NAR of the route table, so a narinfo can never
/// make gc keep (or miss) a key outside it.
pub fn read_narinfo(bytes: &[u8]) -> Result<NarInfoFacts, Unreadable> {
    let text = std::str::from_utf8(bytes).map_err(|_| Unreadable::NotText)?;
    let mut store_path = None;
    let mut url = None;
    let mut nar_hash = false;
    let mut references = Vec::new();
    let mut deriver = None;
    for line in text.lines() {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name {
            "StorePath" => store_path = Some(value),
            "URL" => url = Some(value),
            "NarHash" => nar_hash = !value.is_empty(),
            "References" => {
                for reference in value.split_ascii_whitespace() {
                    let name = StorePathName::parse(base_name(reference))
                        .ok_or(Unreadable::Invalid("References"))?;
                    references.push(name.hash().to_string());
                }
            }
            "Deriver" if !value.is_empty() && value != "unknown-deriver" => {
                let name = StorePathName::parse_drv(base_name(value))
                    .ok_or(Unreadable::Invalid("Deriver"))?;
                deriver = Some(name.as_str().to_string());
            }
            _ => {}
        }
    }
    let store_path = store_path.ok_or(Unreadable::Missing("StorePath"))?;
    let hash = StorePathName::parse(base_name(store_path))
        .ok_or(Unreadable::Invalid("StorePath"))?
        .hash()
        .to_string();
    let url = url.ok_or(Unreadable::Missing("URL"))?;
    // The URL is relative to the cache's root; the query Nix may add is not part of the key.
    let url = url.split('?').next().unwrap_or(url);
    let nar_key = match Route::parse(&format!("/{url}")) {
        Ok(route @ Route::Nar { .. }) => route.object_key().ok_or(Unreadable::Invalid("URL"))?,
        _ => return Err(Unreadable::Invalid("URL")),
    };
    if !nar_hash {
        return Err(Unreadable::Missing("NarHash"));
    }
    Ok(NarInfoFacts {
        hash,
        nar_key,
        references,
        deriver,
    })
}

/// Reads a debug-info file (`{"archive": "../nar/<filehash>.nar.xz", "member": "…"}`, as Nix's
/// `index-debug-info` writes it) and returns the key of the NAR it points into.
pub fn read_debuginfo(bytes: &[u8]) -> Result<String, Unreadable> {
    #[derive(serde::Deserialize)]
    struct DebugInfo {
        archive: String,
    }
    let info: DebugInfo = serde_json::from_slice(bytes).map_err(|_| Unreadable::NotJson)?;
    let archive = info.archive.strip_prefix("../").unwrap_or(&info.archive);
    match Route::parse(&format!("/{archive}")) {
        Ok(route @ Route::Nar { .. }) => route.object_key().ok_or(Unreadable::Invalid("archive")),
        _ => Err(Unreadable::Invalid("archive")),
    }
}

/// Reads a realisation (`realisations/…` or `build-trace-v2/…`; JSON with `outPath`, a base
/// name or a full store path) and returns the store path hash of its output.
pub fn read_realisation(bytes: &[u8]) -> Result<String, Unreadable> {
    #[derive(serde::Deserialize)]
    struct Realisation {
        #[serde(rename = "outPath")]
        out_path: String,
    }
    let realisation: Realisation =
        serde_json::from_slice(bytes).map_err(|_| Unreadable::NotJson)?;
    StorePathName::parse(base_name(&realisation.out_path))
        .map(|name| name.hash().to_string())
        .ok_or(Unreadable::Invalid("outPath"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NARINFO: &str = "StorePath: /nix/store/jn6wiy4rxkfv62gas26kiggypxrnc1p4-hello.txt
URL: nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar.xz
Compression: xz
FileHash: sha256:0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs
FileSize: 136
NarHash: sha256:1hnjs9cv6ly002ckyighzdrj265xy72dcrjv1bv8skzb3h4bgb42
NarSize: 128
References: 3n58xw4373jp0ljirf06d8077j15pc4j-glibc-2.37-8 jn6wiy4rxkfv62gas26kiggypxrnc1p4-hello.txt
Deriver: 5c2gg8r1g2n6a5s0k2w0b3gzdkdvaf0a-hello.txt.drv
Sig: cache.example.com-1:AAAA
";

    #[test]
    fn a_real_narinfo_is_read() {
        let facts = read_narinfo(NARINFO.as_bytes()).unwrap();
        assert_eq!(facts.hash, "jn6wiy4rxkfv62gas26kiggypxrnc1p4");
        assert_eq!(
            facts.nar_key,
            "nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar.xz"
        );
        assert_eq!(
            facts.references,
            [
                "3n58xw4373jp0ljirf06d8077j15pc4j",
                "jn6wiy4rxkfv62gas26kiggypxrnc1p4"
            ]
        );
        assert_eq!(
            facts.deriver.as_deref(),
            Some("5c2gg8r1g2n6a5s0k2w0b3gzdkdvaf0a-hello.txt.drv")
        );
    }

    #[test]
    fn empty_references_and_unknown_deriver_are_fine() {
        let text = NARINFO
            .replace(
                "References: 3n58xw4373jp0ljirf06d8077j15pc4j-glibc-2.37-8 jn6wiy4rxkfv62gas26kiggypxrnc1p4-hello.txt",
                "References: ",
            )
            .replace(
                "Deriver: 5c2gg8r1g2n6a5s0k2w0b3gzdkdvaf0a-hello.txt.drv",
                "Deriver: unknown-deriver",
            );
        let facts = read_narinfo(text.as_bytes()).unwrap();
        assert!(facts.references.is_empty());
        assert_eq!(facts.deriver, None);
        // A query after the NAR's name is not part of its key.
        let text = NARINFO.replace(".nar.xz\n", ".nar.xz?hash=x\n");
        assert!(read_narinfo(text.as_bytes())
            .unwrap()
            .nar_key
            .ends_with(".nar.xz"));
    }

    #[test]
    fn narinfos_that_cannot_be_read_say_why() {
        let cases: [(&str, &str, Unreadable); 6] = [
            (
                "StorePath: /nix/store/jn6wiy4rxkfv62gas26kiggypxrnc1p4-hello.txt\n",
                "",
                Unreadable::Missing("StorePath"),
            ),
            ("URL: nar/", "URL: ../../etc/", Unreadable::Invalid("URL")),
            ("URL: nar/", "URL: log/", Unreadable::Invalid("URL")),
            (
                "NarHash: sha256:1hnjs9cv6ly002ckyighzdrj265xy72dcrjv1bv8skzb3h4bgb42\n",
                "",
                Unreadable::Missing("NarHash"),
            ),
            (
                "3n58xw4373jp0ljirf06d8077j15pc4j-glibc",
                "3n58xw4373jp0-glibc",
                Unreadable::Invalid("References"),
            ),
            (
                "StorePath: /nix/store/jn6",
                "StorePath: /nix/store/JN6",
                Unreadable::Invalid("StorePath"),
            ),
        ];
        for (from, to, want) in cases {
            let text = NARINFO.replace(from, to);
            assert_eq!(read_narinfo(text.as_bytes()), Err(want), "{from} -> {to}");
        }
        assert_eq!(read_narinfo(&[0xff, 0xfe]), Err(Unreadable::NotText));
    }

    #[test]
    fn debuginfo_points_into_a_nar() {
        let json = br#"{"archive":"../nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar.xz","member":"lib/debug/.build-id/ab/cdef.debug"}"#;
        assert_eq!(
            read_debuginfo(json).unwrap(),
            "nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar.xz"
        );
        assert_eq!(
            read_debuginfo(br#"{"archive":"../etc/passwd"}"#),
            Err(Unreadable::Invalid("archive"))
        );
        assert_eq!(read_debuginfo(b"nope"), Err(Unreadable::NotJson));
    }

    #[test]
    fn realisations_name_their_output() {
        let full = br#"{"id":"sha256:aa!out","outPath":"/nix/store/jn6wiy4rxkfv62gas26kiggypxrnc1p4-hello.txt","signatures":[],"dependentRealisations":{}}"#;
        let base = br#"{"outPath":"jn6wiy4rxkfv62gas26kiggypxrnc1p4-hello.txt","signatures":[]}"#;
        for json in [&full[..], &base[..]] {
            assert_eq!(
                read_realisation(json).unwrap(),
                "jn6wiy4rxkfv62gas26kiggypxrnc1p4"
            );
        }
        assert_eq!(
            read_realisation(br#"{"outPath":"x"}"#),
            Err(Unreadable::Invalid("outPath"))
        );
        assert_eq!(read_realisation(b"{}"), Err(Unreadable::NotJson));
    }
}
