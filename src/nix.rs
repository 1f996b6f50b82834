//! The cache's URL space as one [`Route`] type, Nix base32 hashes, and the `nix-cache-info` text.
//!
//! A Nix binary cache is a tree of files that the Nix client fetches by name. This module owns
//! those names: [`Route::parse`] turns a URL path into a [`Route`] or refuses it, and a route
//! knows its object key in the bucket ([`Route::object_key`]), its canonical path
//! ([`Route::path`]) and the `Content-Type` the Worker answers with. Nothing here decodes
//! percent escapes, touches the network or reads a clock: a path that is not exactly one of the
//! shapes below never becomes a key, so `..`, `%2e%2e` or an encoded slash cannot reach the
//! bucket.
//!
//! The paths, as the Nix client asks for them:
//!
//! ```text
//! /                                                         landing page (made by the Worker)
//! /nix-cache-info                                           made by the Worker from its bindings
//! /jn6wiy4rxkfv62gas26kiggypxrnc1p4.narinfo                 store path hash: 32 chars of Nix base32
//! /nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar.xz
//!                                                           file hash: 52 chars; .nar[.xz|.zst|.bz2|.br|.lz4|.lzip|.gz]
//! /jn6wiy4rxkfv62gas26kiggypxrnc1p4.ls                      NAR listing (JSON)
//! /log/<hash>-hello-2.12.1.drv                              build log of a derivation
//! /debuginfo/<build id>                                     lowercase hex ELF build id (JSON pointer into a NAR)
//! /realisations/sha256:<64 hex>!out.doi                     CA derivation output (Nix 2.4 to 2.31)
//! /build-trace-v2/<hash>-hello-2.12.1.drv/out.doi           CA derivation output (newer Nix)
//! ```
//!
//! A real `.narinfo`, as `nix copy --to file://…` wrote it:
//!
//! ```text
//! StorePath: /nix/store/jn6wiy4rxkfv62gas26kiggypxrnc1p4-hello.txt
//! URL: nar/0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs.nar.xz
//! Compression: xz
//! FileHash: sha256:0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs
//! FileSize: 136
//! NarHash: sha256:1hnjs9cv6ly002ckyighzdrj265xy72dcrjv1bv8skzb3h4bgb42
//! NarSize: 128
//! References:
//! CA: fixed:sha256:145kgf1672qms5y66pvh8h2r7vpykchinw63a3jb1rhxjlrhr61p
//! ```
//!
//! and the `nix-cache-info` next to it (see [`CacheInfo`]):
//!
//! ```text
//! StoreDir: /nix/store
//! WantMassQuery: 1
//! Priority: 40
//! ```
//!
//! The query string (`?hash=…` after a NAR URL) is the caller's to strip; it never reaches
//! [`Route::parse`] and is never part of a key.

use std::fmt;

/// The 32 letters of Nix base32: digits and lowercase letters without `e`, `o`, `t`, `u`.
pub const NIX_BASE32_ALPHABET: &str = "0123456789abcdfghijklmnpqrsvwxyz";
/// Length of a store path hash (160 bits in Nix base32).
pub const STORE_PATH_HASH_LEN: usize = 32;
/// Length of a NAR file hash (SHA-256 in Nix base32).
pub const NAR_FILE_HASH_LEN: usize = 52;
/// Longest store path name Nix accepts (the part after `<hash>-`).
pub const MAX_NAME_LEN: usize = 211;
/// Longest URL path [`Route::parse`] looks at; anything longer is [`RouteError::TooLong`].
pub const MAX_PATH_LEN: usize = 1024;

const DRV_HASH_PREFIX: &str = "sha256:";
const DOI: &str = ".doi";

fn is_base32(b: u8) -> bool {
    matches!(b, b'0'..=b'9' | b'a'..=b'd' | b'f'..=b'n' | b'p'..=b's' | b'v'..=b'z')
}

fn is_base32_of_len(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(is_base32)
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.' | b'_' | b'?' | b'=')
}

/// A store path name or an output name: `[A-Za-z0-9+\-._?=]`, 1 to 211 chars, no leading `.`.
fn is_valid_name(s: &str) -> bool {
    (1..=MAX_NAME_LEN).contains(&s.len()) && !s.starts_with('.') && s.bytes().all(is_name_char)
}

/// An ELF build id as Nix files debug info under: lowercase hex, even length, 2 to 128 chars.
fn is_valid_build_id(s: &str) -> bool {
    (2..=128).contains(&s.len())
        && s.len().is_multiple_of(2)
        && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A derivation output id's hash part: `sha256:` and 64 lowercase hex digits.
fn is_valid_drv_hash(s: &str) -> bool {
    s.strip_prefix(DRV_HASH_PREFIX).is_some_and(|hex| {
        hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    })
}

/// The hash part of a store path: 32 chars of Nix base32, e.g. `jn6wiy4rxkfv62gas26kiggypxrnc1p4`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StorePathHash(String);

impl StorePathHash {
    /// Checks length and alphabet; `None` if either is wrong.
    pub fn parse(s: &str) -> Option<Self> {
        is_base32_of_len(s, STORE_PATH_HASH_LEN).then(|| StorePathHash(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StorePathHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The SHA-256 of a (compressed) NAR file in Nix base32: 52 chars, as in `nar/<hash>.nar.xz`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NarFileHash(String);

impl NarFileHash {
    /// Checks length and alphabet; `None` if either is wrong.
    pub fn parse(s: &str) -> Option<Self> {
        is_base32_of_len(s, NAR_FILE_HASH_LEN).then(|| NarFileHash(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NarFileHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The compression of a NAR file, as its URL's suffix says.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Compression {
    None,
    Xz,
    Zstd,
    Bzip2,
    Brotli,
    Lz4,
    Lzip,
    Gzip,
}

impl Compression {
    /// Every compression, for tables and generators.
    pub const ALL: [Compression; 8] = [
        Compression::None,
        Compression::Xz,
        Compression::Zstd,
        Compression::Bzip2,
        Compression::Brotli,
        Compression::Lz4,
        Compression::Lzip,
        Compression::Gzip,
    ];

    /// What follows `.nar` in the file name: `""`, `".xz"`, `".zst"`, ….
    pub fn suffix(self) -> &'static str {
        match self {
            Compression::None => "",
            Compression::Xz => ".xz",
            Compression::Zstd => ".zst",
            Compression::Bzip2 => ".bz2",
            Compression::Brotli => ".br",
            Compression::Lz4 => ".lz4",
            Compression::Lzip => ".lzip",
            Compression::Gzip => ".gz",
        }
    }

    /// The name in a narinfo's `Compression:` field: `none`, `xz`, `zstd`, `bzip2`, `br`, ….
    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Xz => "xz",
            Compression::Zstd => "zstd",
            Compression::Bzip2 => "bzip2",
            Compression::Brotli => "br",
            Compression::Lz4 => "lz4",
            Compression::Lzip => "lzip",
            Compression::Gzip => "gzip",
        }
    }

    /// The compression whose [`suffix`](Self::suffix) is exactly `suffix`.
    pub fn from_suffix(suffix: &str) -> Option<Compression> {
        Compression::ALL.into_iter().find(|c| c.suffix() == suffix)
    }
}

/// A store path's base name, `<hash>-<name>`, e.g. `jn6wiy4rxkfv62gas26kiggypxrnc1p4-hello.txt`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StorePathName(String);

impl StorePathName {
    /// Checks the hash (32 chars of Nix base32), the `-` and the name (Nix's name rules).
    pub fn parse(s: &str) -> Option<Self> {
        let (hash, rest) = (s.get(..STORE_PATH_HASH_LEN)?, s.get(STORE_PATH_HASH_LEN..)?);
        let name = rest.strip_prefix('-')?;
        (is_base32_of_len(hash, STORE_PATH_HASH_LEN) && is_valid_name(name))
            .then(|| StorePathName(s.to_string()))
    }

    /// A derivation's base name: like [`parse`](Self::parse), and the name ends in `.drv`.
    pub fn parse_drv(s: &str) -> Option<Self> {
        Self::parse(s).filter(StorePathName::is_derivation)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The store path hash part.
    pub fn hash(&self) -> &str {
        &self.0[..STORE_PATH_HASH_LEN]
    }

    /// The name after `<hash>-`.
    pub fn name(&self) -> &str {
        &self.0[STORE_PATH_HASH_LEN + 1..]
    }

    pub fn is_derivation(&self) -> bool {
        self.name().ends_with(".drv")
    }
}

impl fmt::Display for StorePathName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Every path the Worker answers, parsed and checked. Build one with [`Route::parse`].
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Route {
    /// `/`: the page for people.
    Landing,
    /// `/nix-cache-info`: made by the Worker from its bindings.
    CacheInfo,
    /// `/<hash>.narinfo`.
    NarInfo(StorePathHash),
    /// `/nar/<filehash>.nar[.xz|.zst|…]`.
    Nar {
        hash: NarFileHash,
        compression: Compression,
    },
    /// `/<hash>.ls`: the NAR's file listing.
    Listing(StorePathHash),
    /// `/log/<drv basename>`: a derivation's build log.
    Log(StorePathName),
    /// `/debuginfo/<build-id>`: lowercase hex, even length, 2 to 128 chars.
    DebugInfo(String),
    /// `/realisations/sha256:<64 hex>!<output>.doi` (the `DrvOutput` id of Nix 2.4 to 2.31).
    Realisation { drv_hash: String, output: String },
    /// `/build-trace-v2/<drv basename>/<output>.doi` (newer Nix).
    BuildTrace { drv: StorePathName, output: String },
}

/// What kind of file a route names, for the cache policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ObjectKind {
    Landing,
    CacheInfo,
    NarInfo,
    Nar,
    Listing,
    Log,
    DebugInfo,
    /// Realisations and build-trace entries alike.
    Realisation,
}

/// Why a path was refused. Every variant is a 4xx ([`status`](Self::status)); the
/// [`message`](Self::message) is short and safe to show to anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
pub enum RouteError {
    /// Longer than [`MAX_PATH_LEN`]: 414.
    #[error("path too long")]
    TooLong,
    /// A `%` escape, a control character or a non-ASCII byte: 400. Cache paths need none.
    #[error("bad path encoding: cache paths are plain ASCII without % escapes")]
    BadEncoding,
    /// Well-formed, but not a path of a Nix binary cache: 404.
    #[error("not a path of this Nix binary cache")]
    NotFound,
}

impl RouteError {
    pub fn status(&self) -> u16 {
        match self {
            RouteError::TooLong => 414,
            RouteError::BadEncoding => 400,
            RouteError::NotFound => 404,
        }
    }

    pub fn message(&self) -> &'static str {
        match self {
            RouteError::TooLong => "path too long",
            RouteError::BadEncoding => {
                "bad path encoding: cache paths are plain ASCII without % escapes"
            }
            RouteError::NotFound => "not a path of this Nix binary cache",
        }
    }
}

impl Route {
    /// Parses a URL path (without its query). Strict: exactly the shapes in the module docs.
    ///
    /// Refused: paths over [`MAX_PATH_LEN`] bytes ([`RouteError::TooLong`]); `%` anywhere,
    /// control characters and non-ASCII ([`RouteError::BadEncoding`]; nothing is
    /// percent-decoded, so an encoded dot or slash never turns into a path); empty, `.` and
    /// `..` segments, wrong hash lengths or letters, unknown suffixes and every other shape
    /// ([`RouteError::NotFound`]). An accepted path is canonical: `parse(p)?.path() == p`.
    pub fn parse(path: &str) -> Result<Route, RouteError> {
        if path.len() > MAX_PATH_LEN {
            return Err(RouteError::TooLong);
        }
        if path
            .bytes()
            .any(|b| b == b'%' || b.is_ascii_control() || !b.is_ascii())
        {
            return Err(RouteError::BadEncoding);
        }
        let rest = path.strip_prefix('/').ok_or(RouteError::NotFound)?;
        if rest.is_empty() {
            return Ok(Route::Landing);
        }
        let mut segments = [""; 3];
        let mut count = 0;
        for segment in rest.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." || count == 3 {
                return Err(RouteError::NotFound);
            }
            segments[count] = segment;
            count += 1;
        }
        let route = match &segments[..count] {
            ["nix-cache-info"] => Some(Route::CacheInfo),
            [file] => parse_top_level(file),
            ["nar", file] => parse_nar(file),
            ["log", drv] => StorePathName::parse_drv(drv).map(Route::Log),
            ["debuginfo", id] => is_valid_build_id(id).then(|| Route::DebugInfo(id.to_string())),
            ["realisations", file] => parse_realisation(file),
            ["build-trace-v2", drv, file] => parse_build_trace(drv, file),
            _ => None,
        };
        route.ok_or(RouteError::NotFound)
    }

    /// The object's key in the bucket (no leading slash); `None` for the routes the Worker
    /// answers itself ([`Route::Landing`], [`Route::CacheInfo`]).
    pub fn object_key(&self) -> Option<String> {
        Some(match self {
            Route::Landing | Route::CacheInfo => return None,
            Route::NarInfo(hash) => format!("{hash}.narinfo"),
            Route::Nar { hash, compression } => format!("nar/{hash}.nar{}", compression.suffix()),
            Route::Listing(hash) => format!("{hash}.ls"),
            Route::Log(drv) => format!("log/{drv}"),
            Route::DebugInfo(id) => format!("debuginfo/{id}"),
            Route::Realisation { drv_hash, output } => {
                format!("realisations/{drv_hash}!{output}{DOI}")
            }
            Route::BuildTrace { drv, output } => format!("build-trace-v2/{drv}/{output}{DOI}"),
        })
    }

    /// The canonical path of this route: `/` plus the object key, or `/`, or
    /// `/nix-cache-info`. `Route::parse(&r.path()) == Ok(r)`.
    pub fn path(&self) -> String {
        match self {
            Route::Landing => "/".to_string(),
            Route::CacheInfo => "/nix-cache-info".to_string(),
            other => format!("/{}", other.object_key().unwrap_or_default()),
        }
    }

    pub fn kind(&self) -> ObjectKind {
        match self {
            Route::Landing => ObjectKind::Landing,
            Route::CacheInfo => ObjectKind::CacheInfo,
            Route::NarInfo(_) => ObjectKind::NarInfo,
            Route::Nar { .. } => ObjectKind::Nar,
            Route::Listing(_) => ObjectKind::Listing,
            Route::Log(_) => ObjectKind::Log,
            Route::DebugInfo(_) => ObjectKind::DebugInfo,
            Route::Realisation { .. } | Route::BuildTrace { .. } => ObjectKind::Realisation,
        }
    }

    /// The `Content-Type` the Worker answers this route with (whatever the bucket says).
    pub fn content_type(&self) -> &'static str {
        match self.kind() {
            ObjectKind::Landing => "text/html; charset=utf-8",
            ObjectKind::CacheInfo => "text/x-nix-cache-info",
            ObjectKind::NarInfo => "text/x-nix-narinfo",
            ObjectKind::Nar => "application/x-nix-nar",
            ObjectKind::Log => "text/plain; charset=utf-8",
            ObjectKind::Listing | ObjectKind::DebugInfo | ObjectKind::Realisation => {
                "application/json"
            }
        }
    }
}

/// `<hash>.narinfo` or `<hash>.ls`.
fn parse_top_level(file: &str) -> Option<Route> {
    if let Some(hash) = file.strip_suffix(".narinfo") {
        return StorePathHash::parse(hash).map(Route::NarInfo);
    }
    file.strip_suffix(".ls")
        .and_then(StorePathHash::parse)
        .map(Route::Listing)
}

/// `<52 chars>.nar<suffix>`.
fn parse_nar(file: &str) -> Option<Route> {
    let hash = NarFileHash::parse(file.get(..NAR_FILE_HASH_LEN)?)?;
    let suffix = file.get(NAR_FILE_HASH_LEN..)?.strip_prefix(".nar")?;
    let compression = Compression::from_suffix(suffix)?;
    Some(Route::Nar { hash, compression })
}

/// `<drv basename>` and `<output>.doi`.
fn parse_build_trace(drv: &str, file: &str) -> Option<Route> {
    let drv = StorePathName::parse_drv(drv)?;
    let output = file.strip_suffix(DOI).filter(|o| is_valid_name(o))?;
    Some(Route::BuildTrace {
        drv,
        output: output.to_string(),
    })
}

/// `sha256:<64 hex>!<output>.doi`.
fn parse_realisation(file: &str) -> Option<Route> {
    let (drv_hash, output) = file.strip_suffix(DOI)?.split_once('!')?;
    (is_valid_drv_hash(drv_hash) && is_valid_name(output)).then(|| Route::Realisation {
        drv_hash: drv_hash.to_string(),
        output: output.to_string(),
    })
}

/// The `nix-cache-info` file: what the Nix client learns about the cache before anything else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CacheInfo {
    /// The store the cache's paths belong to; Nix refuses a cache for another store dir.
    pub store_dir: String,
    /// Whether clients may ask for many narinfos at once (`nix-env -qas`, `nix path-info`).
    pub want_mass_query: bool,
    /// Lower wins when several substituters have a path; cache.nixos.org is 40.
    pub priority: u32,
}

impl Default for CacheInfo {
    fn default() -> Self {
        CacheInfo {
            store_dir: "/nix/store".to_string(),
            want_mass_query: true,
            priority: 40,
        }
    }
}

impl CacheInfo {
    /// The file's text: `StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n`.
    pub fn render(&self) -> String {
        format!(
            "StoreDir: {}\nWantMassQuery: {}\nPriority: {}\n",
            self.store_dir,
            u8::from(self.want_mass_query),
            self.priority
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const H32: &str = "jn6wiy4rxkfv62gas26kiggypxrnc1p4";
    const H52: &str = "0wplwx3f43xqwv17x8n1z5qk64ll860dhz3g86kn496p8h03r0hs";

    #[test]
    fn base32_alphabet_matches_the_predicate() {
        for b in 0u8..=255 {
            assert_eq!(
                is_base32(b),
                NIX_BASE32_ALPHABET.as_bytes().contains(&b),
                "byte {b}"
            );
        }
        assert_eq!(NIX_BASE32_ALPHABET.len(), 32);
    }

    #[test]
    fn hashes_check_length_and_letters() {
        assert_eq!(StorePathHash::parse(H32).unwrap().as_str(), H32);
        assert!(StorePathHash::parse(&H32[1..]).is_none());
        assert!(StorePathHash::parse(&format!("{H32}0")).is_none());
        for bad in ['e', 'o', 't', 'u', 'A', '-'] {
            let s = format!("{}{bad}", &H32[1..]);
            assert!(StorePathHash::parse(&s).is_none(), "{s}");
        }
        assert_eq!(NarFileHash::parse(H52).unwrap().as_str(), H52);
        assert!(NarFileHash::parse(H32).is_none());
    }

    #[test]
    fn store_path_names() {
        let drv = StorePathName::parse_drv(&format!("{H32}-hello-2.12.1.drv")).unwrap();
        assert_eq!(drv.hash(), H32);
        assert_eq!(drv.name(), "hello-2.12.1.drv");
        assert!(StorePathName::parse_drv(&format!("{H32}-hello")).is_none());
        assert!(StorePathName::parse(&format!("{H32}-hello")).is_some());
        assert!(StorePathName::parse(&format!("{H32}-.drv")).is_none());
        assert!(StorePathName::parse(&format!("{H32}-")).is_none());
        assert!(StorePathName::parse(&format!("{H32}_x")).is_none());
        assert!(StorePathName::parse(&format!("{H32}-a b")).is_none());
        let long = "a".repeat(MAX_NAME_LEN);
        assert!(StorePathName::parse(&format!("{H32}-{long}")).is_some());
        assert!(StorePathName::parse(&format!("{H32}-{long}a")).is_none());
    }

    #[test]
    fn compression_suffixes_round_trip() {
        for c in Compression::ALL {
            assert_eq!(Compression::from_suffix(c.suffix()), Some(c));
        }
        assert_eq!(Compression::from_suffix(".rar"), None);
    }

    #[test]
    fn object_keys() {
        let nar = Route::parse(&format!("/nar/{H52}.nar.xz")).unwrap();
        assert_eq!(nar.object_key().unwrap(), format!("nar/{H52}.nar.xz"));
        let narinfo = Route::parse(&format!("/{H32}.narinfo")).unwrap();
        assert_eq!(narinfo.object_key().unwrap(), format!("{H32}.narinfo"));
        assert_eq!(Route::Landing.object_key(), None);
        assert_eq!(Route::CacheInfo.object_key(), None);
    }

    #[test]
    fn cache_info_text() {
        assert_eq!(
            CacheInfo::default().render(),
            "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
        );
        let other = CacheInfo {
            store_dir: "/gnu/store".into(),
            want_mass_query: false,
            priority: 10,
        };
        assert_eq!(
            other.render(),
            "StoreDir: /gnu/store\nWantMassQuery: 0\nPriority: 10\n"
        );
    }

    #[test]
    fn errors_are_4xx_with_display_equal_to_message() {
        for e in [
            RouteError::TooLong,
            RouteError::BadEncoding,
            RouteError::NotFound,
        ] {
            assert!((400..500).contains(&e.status()));
            assert_eq!(e.to_string(), e.message());
        }
    }
}
