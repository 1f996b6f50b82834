//! The pure decisions of gc: which narinfos are kept (the closure of the recent ones), and for
//! every listed object whether it stays or goes, and why.
//!
//! The order of deletion is part of the plan, because gc may be stopped at any point and the
//! cache must stay whole at each one: dangling narinfos (their NAR is gone: they are what
//! breaks clients) first, then narinfos nobody keeps, then the files they referred to. A
//! narinfo is always gone before its NAR, so no client is ever sent to a missing NAR.
//!
//! Nothing outside the route table is touched (a bucket may hold other things), and
//! `nix-cache-info` is never deleted.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use nix_spaces_cache::nix::Route;

use super::facts::{NarInfoFacts, Unreadable};

/// One object as the bucket's listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    /// `LastModified`, Unix seconds.
    pub modified: i64,
}

/// How long things are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Narinfos written within this many seconds are roots.
    pub retention_secs: i64,
    /// Objects no kept narinfo refers to go only once older than this (a push in flight has
    /// its NAR before its narinfo).
    pub grace_secs: i64,
}

impl Policy {
    /// From the config's `retention_days` and `gc_grace_hours`.
    pub fn from_days_and_hours(retention_days: u32, grace_hours: u32) -> Policy {
        Policy {
            retention_secs: i64::from(retention_days) * 86_400,
            grace_secs: i64::from(grace_hours) * 3_600,
        }
    }
}

/// What a key is, by the route table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Class {
    CacheInfo,
    /// `<hash>.narinfo`, with its store path hash.
    NarInfo(String),
    Nar,
    /// `<hash>.ls`, with its store path hash.
    Listing(String),
    /// `log/<drv>`, with the derivation's base name.
    Log(String),
    DebugInfo,
    /// `realisations/…` and `build-trace-v2/…`.
    Realisation,
    /// Not a path of the cache: never touched.
    Foreign,
}

impl Class {
    pub fn of(key: &str) -> Class {
        if key == "nix-cache-info" {
            return Class::CacheInfo;
        }
        // Only keys that are exactly a route's object key belong to the cache.
        let route = match Route::parse(&format!("/{key}")) {
            Ok(route) if route.object_key().as_deref() == Some(key) => route,
            _ => return Class::Foreign,
        };
        match route {
            Route::NarInfo(hash) => Class::NarInfo(hash.as_str().to_string()),
            Route::Nar { .. } => Class::Nar,
            Route::Listing(hash) => Class::Listing(hash.as_str().to_string()),
            Route::Log(drv) => Class::Log(drv.as_str().to_string()),
            Route::DebugInfo(_) => Class::DebugInfo,
            Route::Realisation { .. } | Route::BuildTrace { .. } => Class::Realisation,
            Route::Landing | Route::CacheInfo => Class::Foreign,
        }
    }

    /// A name for counts and messages.
    pub fn kind(&self) -> Kind {
        match self {
            Class::CacheInfo | Class::Foreign => Kind::Other,
            Class::NarInfo(_) => Kind::NarInfo,
            Class::Nar => Kind::Nar,
            Class::Listing(_) => Kind::Listing,
            Class::Log(_) => Kind::Log,
            Class::DebugInfo => Kind::DebugInfo,
            Class::Realisation => Kind::Realisation,
        }
    }
}

/// Kinds of object, for the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    NarInfo,
    Nar,
    Listing,
    Log,
    DebugInfo,
    Realisation,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 7] = [
        Kind::NarInfo,
        Kind::Nar,
        Kind::Listing,
        Kind::Log,
        Kind::DebugInfo,
        Kind::Realisation,
        Kind::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::NarInfo => "narinfos",
            Kind::Nar => "NARs",
            Kind::Listing => "listings",
            Kind::Log => "logs",
            Kind::DebugInfo => "debug info",
            Kind::Realisation => "realisations",
            Kind::Other => "other",
        }
    }
}

/// A narinfo as gc saw it: listed, then read.
#[derive(Clone, Debug)]
pub struct NarInfoEntry {
    /// `LastModified` of the narinfo, Unix seconds.
    pub modified: i64,
    pub facts: Result<NarInfoFacts, Unreadable>,
}

/// Which narinfos are kept, and what that keeps.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Closure {
    /// Store path hashes of the kept narinfos (roots, their closure, and unreadable ones).
    pub kept: HashSet<String>,
    /// NAR keys a kept narinfo refers to.
    pub kept_nars: HashSet<String>,
    /// Derivations (base names) a kept narinfo names as its deriver: their logs stay.
    pub kept_derivers: HashSet<String>,
    /// Narinfos whose NAR is not in the bucket, by hash: deleted first.
    pub dangling: BTreeSet<String>,
    /// Kept paths that refer to a path the cache does not hold (or holds dangling):
    /// `(kept hash, missing reference hash)`. gc cannot mend these; it reports them.
    pub broken: BTreeSet<(String, String)>,
    /// Narinfos that could not be read: kept, and reported.
    pub unreadable: BTreeMap<String, Unreadable>,
    /// How many narinfos were roots (written within the retention period).
    pub roots: usize,
}

/// The closure of the narinfos written within the retention period. `nar_present` says whether
/// a NAR key is in the bucket.
pub fn closure(
    narinfos: &BTreeMap<String, NarInfoEntry>,
    nar_present: impl Fn(&str) -> bool,
    policy: Policy,
    now: i64,
) -> Closure {
    let mut out = Closure::default();
    let mut queue = Vec::new();
    for (hash, entry) in narinfos {
        match &entry.facts {
            Err(why) => {
                out.unreadable.insert(hash.clone(), why.clone());
                out.kept.insert(hash.clone());
            }
            Ok(facts) if !nar_present(&facts.nar_key) => {
                out.dangling.insert(hash.clone());
            }
            Ok(_) if entry.modified >= now - policy.retention_secs => {
                out.roots += 1;
                queue.push(hash.clone());
            }
            Ok(_) => {}
        }
    }
    while let Some(hash) = queue.pop() {
        if !out.kept.insert(hash.clone()) {
            continue;
        }
        let Some(Ok(facts)) = narinfos.get(&hash).map(|e| &e.facts) else {
            continue;
        };
        out.kept_nars.insert(facts.nar_key.clone());
        if let Some(deriver) = &facts.deriver {
            out.kept_derivers.insert(deriver.clone());
        }
        for reference in &facts.references {
            let held = narinfos.contains_key(reference) && !out.dangling.contains(reference);
            if !held {
                out.broken.insert((hash.clone(), reference.clone()));
            } else if !out.kept.contains(reference) {
                queue.push(reference.clone());
            }
        }
    }
    out
}

/// Why an object stays.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Keep {
    /// `nix-cache-info`: never deleted.
    CacheInfo,
    /// Not a path of the cache: not gc's to touch.
    Foreign,
    /// A narinfo written within the retention period, or in the closure of one.
    Kept,
    /// A kept narinfo refers to it.
    Referenced,
    /// Nothing refers to it, but it is younger than the grace period.
    Young,
    /// It could not be read, so what it refers to is unknown.
    Unreadable,
}

/// Why an object goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Delete {
    /// A narinfo whose NAR is not in the bucket (confirm with a HEAD of the NAR first: the
    /// listing is not atomic).
    Dangling,
    /// A narinfo older than the retention period that no kept narinfo refers to.
    Expired,
    /// A NAR, listing, log, debug info or realisation that no kept narinfo refers to, older
    /// than the grace period.
    Unreferenced,
}

impl Delete {
    /// The phase it is deleted in: dangling narinfos, then other narinfos, then the rest.
    pub fn phase(self) -> usize {
        match self {
            Delete::Dangling => 0,
            Delete::Expired => 1,
            Delete::Unreferenced => 2,
        }
    }
}

/// The verdict on one object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Keep(Keep),
    Delete(Delete),
}

/// Judges listed objects against a [`Closure`]; one object at a time, so a listing can be
/// judged page by page.
#[derive(Debug)]
pub struct Decider<'a> {
    pub closure: &'a Closure,
    pub policy: Policy,
    pub now: i64,
}

impl Decider<'_> {
    fn past_grace(&self, listed: &Listed) -> bool {
        listed.modified < self.now - self.policy.grace_secs
    }

    /// Whether judging this object needs its contents (a debug-info file or a realisation
    /// that would otherwise go: what it points at decides).
    pub fn needs_contents(&self, listed: &Listed) -> bool {
        matches!(
            Class::of(&listed.key),
            Class::DebugInfo | Class::Realisation
        ) && self.past_grace(listed)
    }

    /// The verdict on `listed`. `contents` is what [`facts`](super::facts) read from it when
    /// [`needs_contents`](Self::needs_contents) asked for it: the NAR key of a debug-info file,
    /// the output hash of a realisation.
    pub fn judge(&self, listed: &Listed, contents: Option<&Result<String, Unreadable>>) -> Verdict {
        let closure = self.closure;
        let referenced = match Class::of(&listed.key) {
            Class::CacheInfo => return Verdict::Keep(Keep::CacheInfo),
            Class::Foreign => return Verdict::Keep(Keep::Foreign),
            Class::NarInfo(hash) => {
                return if closure.dangling.contains(&hash) {
                    Verdict::Delete(Delete::Dangling)
                } else if closure.unreadable.contains_key(&hash) {
                    Verdict::Keep(Keep::Unreadable)
                } else if closure.kept.contains(&hash) {
                    Verdict::Keep(Keep::Kept)
                } else {
                    Verdict::Delete(Delete::Expired)
                };
            }
            Class::Nar => closure.kept_nars.contains(&listed.key),
            Class::Listing(hash) => closure.kept.contains(&hash),
            Class::Log(drv) => closure.kept_derivers.contains(&drv),
            Class::DebugInfo => match contents {
                Some(Ok(nar_key)) => closure.kept_nars.contains(nar_key),
                Some(Err(_)) => return Verdict::Keep(Keep::Unreadable),
                None => false,
            },
            Class::Realisation => match contents {
                Some(Ok(out_hash)) => closure.kept.contains(out_hash),
                Some(Err(_)) => return Verdict::Keep(Keep::Unreadable),
                None => false,
            },
        };
        if referenced {
            Verdict::Keep(Keep::Referenced)
        } else if !self.past_grace(listed) {
            Verdict::Keep(Keep::Young)
        } else {
            Verdict::Delete(Delete::Unreferenced)
        }
    }
}

/// Counts and bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    pub bytes: u64,
}

impl Tally {
    pub fn add(&mut self, size: u64) {
        self.count += 1;
        self.bytes += size;
    }
}

/// A whole plan over a listing: the deletions in the order they must happen, and what stays.
#[derive(Clone, Debug, Default)]
pub struct GcPlan {
    /// Keys to delete, in phases (see [`Delete::phase`]), each phase in key order.
    pub deletes: Vec<(Listed, Delete)>,
    pub deleted: BTreeMap<Kind, Tally>,
    pub kept: BTreeMap<Kind, Tally>,
    pub kept_why: BTreeMap<Keep, u64>,
    pub closure: Closure,
    /// `nix-cache-info` is not in the bucket: gc writes it again.
    pub cache_info_missing: bool,
}

impl GcPlan {
    /// The deletions of one phase.
    pub fn phase(&self, phase: usize) -> impl Iterator<Item = &Listed> {
        self.deletes
            .iter()
            .filter(move |(_, why)| why.phase() == phase)
            .map(|(listed, _)| listed)
    }
}

/// [`closure`] with the NARs the listing holds.
pub fn closure_of_listing(
    listing: &[Listed],
    narinfos: &BTreeMap<String, NarInfoEntry>,
    policy: Policy,
    now: i64,
) -> Closure {
    let nars: HashSet<&str> = listing
        .iter()
        .filter(|l| Class::of(&l.key) == Class::Nar)
        .map(|l| l.key.as_str())
        .collect();
    closure(narinfos, |key| nars.contains(key), policy, now)
}

/// Plans a whole collection: `listing` is every object in the bucket, `narinfos` the read
/// narinfos by hash, `contents` what was read from the objects that
/// [`Decider::needs_contents`] asked for, by key.
pub fn plan_gc(
    listing: &[Listed],
    narinfos: &BTreeMap<String, NarInfoEntry>,
    contents: &HashMap<String, Result<String, Unreadable>>,
    policy: Policy,
    now: i64,
) -> GcPlan {
    let closure = closure_of_listing(listing, narinfos, policy, now);
    plan_with(listing, closure, contents, policy, now)
}

/// [`plan_gc`] for a closure already worked out (the run loop needs it earlier, to know which
/// objects to open).
pub fn plan_with(
    listing: &[Listed],
    closure: Closure,
    contents: &HashMap<String, Result<String, Unreadable>>,
    policy: Policy,
    now: i64,
) -> GcPlan {
    let decider = Decider {
        closure: &closure,
        policy,
        now,
    };
    let mut plan = GcPlan {
        cache_info_missing: !listing.iter().any(|l| l.key == "nix-cache-info"),
        ..GcPlan::default()
    };
    for listed in listing {
        let kind = Class::of(&listed.key).kind();
        match decider.judge(listed, contents.get(&listed.key)) {
            Verdict::Keep(why) => {
                plan.kept.entry(kind).or_default().add(listed.size);
                *plan.kept_why.entry(why).or_default() += 1;
            }
            Verdict::Delete(why) => {
                plan.deleted.entry(kind).or_default().add(listed.size);
                plan.deletes.push((listed.clone(), why));
            }
        }
    }
    plan.deletes
        .sort_by(|(a, x), (b, y)| (x.phase(), &a.key).cmp(&(y.phase(), &b.key)));
    plan.closure = closure;
    plan
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;
    const POLICY: Policy = Policy {
        retention_secs: 30 * DAY,
        grace_secs: DAY,
    };

    /// A store path hash made from a letter: `aaaa…` (32 chars of Nix base32).
    fn h(c: char) -> String {
        c.to_string().repeat(32)
    }

    /// A NAR key made from a letter.
    fn nar(c: char) -> String {
        format!("nar/{}.nar.xz", c.to_string().repeat(52))
    }

    fn listed(key: &str, age_days: i64) -> Listed {
        Listed {
            key: key.to_string(),
            size: 100,
            modified: NOW - age_days * DAY,
        }
    }

    /// A cache: each path is (letter, age in days, references, NAR letter).
    struct Cache {
        listing: Vec<Listed>,
        narinfos: BTreeMap<String, NarInfoEntry>,
        contents: HashMap<String, Result<String, Unreadable>>,
    }

    impl Cache {
        fn new() -> Cache {
            Cache {
                listing: vec![listed("nix-cache-info", 400)],
                narinfos: BTreeMap::new(),
                contents: HashMap::new(),
            }
        }

        /// A pushed path: its NAR (as old as the narinfo) and its narinfo.
        fn path(mut self, c: char, age: i64, refs: &[char], nar_c: char) -> Cache {
            if !self.listing.iter().any(|l| l.key == nar(nar_c)) {
                self.listing.push(listed(&nar(nar_c), age));
            }
            self.narinfo(c, age, refs, nar_c)
        }

        /// A narinfo alone (its NAR may or may not be there).
        fn narinfo(mut self, c: char, age: i64, refs: &[char], nar_c: char) -> Cache {
            let entry = listed(&format!("{}.narinfo", h(c)), age);
            self.listing.push(entry.clone());
            self.narinfos.insert(
                h(c),
                NarInfoEntry {
                    modified: entry.modified,
                    facts: Ok(NarInfoFacts {
                        hash: h(c),
                        nar_key: nar(nar_c),
                        references: refs.iter().map(|r| h(*r)).collect(),
                        deriver: Some(format!("{}-{c}.drv", h(c))),
                    }),
                },
            );
            self
        }

        fn object(mut self, key: &str, age: i64) -> Cache {
            self.listing.push(listed(key, age));
            self
        }

        fn plan(&self) -> GcPlan {
            plan_gc(&self.listing, &self.narinfos, &self.contents, POLICY, NOW)
        }
    }

    fn deleted(plan: &GcPlan) -> Vec<(String, Delete)> {
        plan.deletes
            .iter()
            .map(|(l, why)| (l.key.clone(), *why))
            .collect()
    }

    fn narinfo_key(c: char) -> String {
        format!("{}.narinfo", h(c))
    }

    #[test]
    fn an_old_path_referenced_by_a_fresh_one_is_kept_with_its_whole_closure() {
        // a (fresh) -> b (old) -> c (old); d (old) alone.
        let cache = Cache::new()
            .path('a', 1, &['b'], 'a')
            .path('b', 100, &['c'], 'b')
            .path('c', 200, &['c'], 'c')
            .path('d', 100, &[], 'd');
        let plan = cache.plan();
        assert_eq!(
            deleted(&plan),
            [
                (narinfo_key('d'), Delete::Expired),
                (nar('d'), Delete::Unreferenced),
            ]
        );
        assert_eq!(plan.closure.roots, 1);
        assert_eq!(plan.closure.kept.len(), 3);
        assert!(plan.closure.broken.is_empty());
        assert_eq!(plan.kept[&Kind::Nar].count, 3);
        assert_eq!(plan.kept_why[&Keep::CacheInfo], 1);
    }

    #[test]
    fn a_nar_shared_by_two_narinfos_stays_while_either_is_kept() {
        let cache = Cache::new().path('a', 1, &[], 'n').path('b', 100, &[], 'n');
        let plan = cache.plan();
        assert_eq!(deleted(&plan), [(narinfo_key('b'), Delete::Expired)]);
        let cache = Cache::new()
            .path('a', 100, &[], 'n')
            .path('b', 100, &[], 'n');
        let plan = cache.plan();
        assert_eq!(
            deleted(&plan),
            [
                (narinfo_key('a'), Delete::Expired),
                (narinfo_key('b'), Delete::Expired),
                (nar('n'), Delete::Unreferenced),
            ]
        );
    }

    #[test]
    fn a_push_in_flight_survives() {
        // The NAR of a push in flight is there, its narinfo not yet: young, so it stays.
        let cache = Cache::new().object(&nar('x'), 0);
        assert!(cache.plan().deletes.is_empty());
        // The same NAR two days later, still without a narinfo, goes.
        let cache = Cache::new().object(&nar('x'), 2);
        assert_eq!(deleted(&cache.plan()), [(nar('x'), Delete::Unreferenced)]);
    }

    #[test]
    fn dangling_narinfos_go_first_and_are_counted() {
        // b's NAR is gone; a (fresh) refers to b.
        let cache = Cache::new()
            .path('a', 1, &['b'], 'a')
            .narinfo('b', 50, &[], 'b')
            .narinfo('c', 0, &[], 'c')
            .path('d', 100, &[], 'd');
        let plan = cache.plan();
        assert_eq!(
            deleted(&plan),
            [
                (narinfo_key('b'), Delete::Dangling),
                (narinfo_key('c'), Delete::Dangling),
                (narinfo_key('d'), Delete::Expired),
                (nar('d'), Delete::Unreferenced),
            ]
        );
        assert_eq!(plan.closure.dangling.len(), 2);
        assert_eq!(
            plan.closure.broken,
            BTreeSet::from([(h('a'), h('b'))]),
            "a kept path that refers to a dangling one is reported"
        );
    }

    #[test]
    fn references_to_paths_the_cache_never_had_are_reported() {
        let cache = Cache::new().path('a', 1, &['z'], 'a');
        let plan = cache.plan();
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.closure.broken, BTreeSet::from([(h('a'), h('z'))]));
    }

    #[test]
    fn listings_logs_debuginfo_and_realisations_follow_their_narinfo() {
        let mut cache = Cache::new()
            .path('a', 1, &[], 'a')
            .path('b', 100, &[], 'b')
            .object(&format!("{}.ls", h('a')), 40)
            .object(&format!("{}.ls", h('b')), 40)
            .object(&format!("{}.ls", h('c')), 0)
            .object(&format!("log/{}-a.drv", h('a')), 40)
            .object(&format!("log/{}-b.drv", h('b')), 40)
            .object("debuginfo/aa", 40)
            .object("debuginfo/bb", 40)
            .object("debuginfo/cc", 40)
            .object(
                &format!("realisations/sha256:{}!out.doi", "1".repeat(64)),
                40,
            )
            .object(&format!("build-trace-v2/{}-b.drv/out.doi", h('b')), 40);
        cache.contents.insert("debuginfo/aa".into(), Ok(nar('a')));
        cache.contents.insert("debuginfo/bb".into(), Ok(nar('b')));
        cache
            .contents
            .insert("debuginfo/cc".into(), Err(Unreadable::NotJson));
        cache.contents.insert(
            format!("realisations/sha256:{}!out.doi", "1".repeat(64)),
            Ok(h('a')),
        );
        cache.contents.insert(
            format!("build-trace-v2/{}-b.drv/out.doi", h('b')),
            Ok(h('b')),
        );
        let plan = cache.plan();
        assert_eq!(
            deleted(&plan),
            [
                (narinfo_key('b'), Delete::Expired),
                (format!("{}.ls", h('b')), Delete::Unreferenced),
                (
                    format!("build-trace-v2/{}-b.drv/out.doi", h('b')),
                    Delete::Unreferenced
                ),
                ("debuginfo/bb".into(), Delete::Unreferenced),
                (format!("log/{}-b.drv", h('b')), Delete::Unreferenced),
                (nar('b'), Delete::Unreferenced),
            ]
        );
        assert_eq!(plan.kept_why[&Keep::Unreadable], 1, "debuginfo/cc");
        assert_eq!(plan.kept_why[&Keep::Young], 1, "c.ls");
    }

    #[test]
    fn foreign_keys_and_nix_cache_info_are_never_touched() {
        let cache = Cache::new()
            .object("backups/db.tar", 1000)
            .object("nar/short.nar", 1000)
            .object(&format!("{}.narinfo.bak", h('a')), 1000);
        let plan = cache.plan();
        assert!(plan.deletes.is_empty());
        assert_eq!(plan.kept_why[&Keep::Foreign], 3);
        assert!(!plan.cache_info_missing);
        let empty = plan_gc(&[], &BTreeMap::new(), &HashMap::new(), POLICY, NOW);
        assert!(empty.cache_info_missing);
    }

    #[test]
    fn unreadable_narinfos_are_kept_and_reported() {
        let mut cache = Cache::new().path('a', 100, &[], 'a');
        cache.narinfos.get_mut(&h('a')).unwrap().facts = Err(Unreadable::Missing("URL"));
        let plan = cache.plan();
        assert_eq!(
            deleted(&plan),
            [(nar('a'), Delete::Unreferenced)],
            "what it refers to is unknown; the narinfo itself stays"
        );
        assert_eq!(plan.closure.unreadable.len(), 1);
    }

    #[test]
    fn the_retention_boundary_is_inclusive_and_grace_is_exclusive() {
        let cache = Cache::new().path('a', 30, &[], 'a').object(&nar('g'), 1);
        let plan = cache.plan();
        assert!(plan.deletes.is_empty(), "{:?}", deleted(&plan));
    }

    #[test]
    fn every_narinfo_goes_before_any_file() {
        let mut cache = Cache::new();
        for (i, c) in "abcdfghij".chars().enumerate() {
            cache = cache.path(c, 40 + i as i64, &[], c);
        }
        let plan = cache.plan();
        let phases: Vec<usize> = plan.deletes.iter().map(|(_, why)| why.phase()).collect();
        let mut sorted = phases.clone();
        sorted.sort();
        assert_eq!(phases, sorted);
        assert_eq!(plan.phase(1).count(), 9);
        assert_eq!(plan.phase(2).count(), 9);
        assert_eq!(plan.deleted[&Kind::Nar].bytes, 900);
    }

    #[test]
    fn keys_that_only_look_like_routes_are_foreign() {
        for key in [
            "nar/../x",
            "/nar/x",
            "NIX-CACHE-INFO",
            "log/x.drv",
            &format!("{}.narinfo/", h('a')),
        ] {
            assert_eq!(Class::of(key), Class::Foreign, "{key}");
        }
        assert_eq!(Class::of(&nar('a')), Class::Nar);
    }
}
