//! The thin loop around [`plan`](super::plan): list the bucket page by page, read the narinfos
//! (and the few files whose contents decide their fate) concurrently, plan, then delete in
//! phases and say what happened.
//!
//! Safe to stop at any point: the phases delete dangling narinfos, then the narinfos nobody
//! keeps, then the files, so at every moment each narinfo in the bucket still has its NAR and
//! the next run finishes the job. Safe beside pushes: a NAR younger than the grace period stays
//! (its narinfo may be on its way), and a narinfo that looks dangling is deleted only after a
//! HEAD of its NAR confirms the NAR is gone.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::Context;

use super::facts::{self, Unreadable};
use super::plan::{
    closure_of_listing, plan_with, Class, Decider, Delete, GcPlan, Listed, NarInfoEntry, Policy,
    Tally,
};

/// The bucket as gc needs it. Each method is one S3 call (a listing page, GET, HEAD, DELETE,
/// PUT); errors say which call and key failed.
pub trait Bucket: Sync {
    /// One page of the listing, after the continuation token of the page before.
    fn list(&self, continuation: Option<&str>) -> anyhow::Result<ListPage>;
    /// The object's bytes, `None` when there is no such key.
    fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>>;
    /// Whether the key exists (HEAD).
    fn exists(&self, key: &str) -> anyhow::Result<bool>;
    /// Deletes the key (no error when it is already gone).
    fn delete(&self, key: &str) -> anyhow::Result<()>;
    /// Writes the key.
    fn put(&self, key: &str, body: &[u8], content_type: &str) -> anyhow::Result<()>;
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct ListPage {
    pub objects: Vec<Listed>,
    /// The continuation token of the next page; `None` on the last one.
    pub next: Option<String>,
}

/// How a run goes.
#[derive(Clone, Debug)]
pub struct Options {
    pub policy: Policy,
    /// Unix seconds.
    pub now: i64,
    /// Plan and report only; change nothing.
    pub dry_run: bool,
    /// Requests in flight at once when reading and deleting.
    pub concurrency: usize,
    /// The `nix-cache-info` text, written when the object is missing.
    pub cache_info: String,
}

/// What a run saw and did.
#[derive(Clone, Debug, Default)]
pub struct Report {
    pub listed: u64,
    pub narinfos_read: u64,
    pub plan: GcPlan,
    /// What was deleted (all zero for a dry run).
    pub deleted: BTreeMap<super::plan::Kind, Tally>,
    /// Narinfos that looked dangling but whose NAR a HEAD then found (a push in flight).
    pub dangling_spared: u64,
    /// `nix-cache-info` was missing and was written again.
    pub cache_info_written: bool,
    /// How long listing, reading and deleting took.
    pub listing_time: Duration,
    pub reading_time: Duration,
    pub deleting_time: Duration,
}

impl Report {
    pub fn bytes_freed(&self) -> u64 {
        self.deleted.values().map(|t| t.bytes).sum()
    }
}

/// Progress, as the run goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    Listed(u64),
    Read { done: u64, of: u64 },
    Deleted { done: u64, of: u64 },
}

/// Longest listing gc follows; a bucket whose listing does not end is an error, not a loop.
const MAX_PAGES: usize = 1_000_000;

/// Runs a collection over `bucket`.
pub fn run(
    bucket: &dyn Bucket,
    options: &Options,
    progress: &(dyn Fn(Progress) + Sync),
) -> anyhow::Result<Report> {
    let started = Instant::now();
    let listing = list_all(bucket, progress)?;
    let mut report = Report {
        listed: listing.len() as u64,
        listing_time: started.elapsed(),
        ..Report::default()
    };
    let started = Instant::now();

    let narinfo_keys: Vec<(&Listed, String)> = listing
        .iter()
        .filter_map(|l| match Class::of(&l.key) {
            Class::NarInfo(hash) => Some((l, hash)),
            _ => None,
        })
        .collect();
    let of = narinfo_keys.len() as u64;
    let done = AtomicUsize::new(0);
    // Each narinfo is read into its facts at once: its text is never kept.
    let read = parallel_map(&narinfo_keys, options.concurrency, |(listed, hash)| {
        let facts = bucket
            .get(&listed.key)?
            .map(|bytes| facts::read_narinfo(&bytes));
        let n = done.fetch_add(1, Ordering::Relaxed) as u64 + 1;
        if n.is_multiple_of(1000) || n == of {
            progress(Progress::Read { done: n, of });
        }
        Ok((hash.clone(), listed.modified, facts))
    })?;
    let mut narinfos = BTreeMap::new();
    for (hash, modified, facts) in read {
        // A narinfo deleted since the listing is simply not there any more.
        let Some(facts) = facts else { continue };
        narinfos.insert(hash, NarInfoEntry { modified, facts });
    }
    report.narinfos_read = narinfos.len() as u64;

    // The files whose contents decide whether they stay: only those that would otherwise go.
    let closure = closure_of_listing(&listing, &narinfos, options.policy, options.now);
    let decider = Decider {
        closure: &closure,
        policy: options.policy,
        now: options.now,
    };
    let to_open: Vec<&Listed> = listing
        .iter()
        .filter(|l| decider.needs_contents(l))
        .collect();
    let opened = parallel_map(&to_open, options.concurrency, |listed| {
        let bytes = bucket.get(&listed.key)?;
        let read = bytes.map(|bytes| match Class::of(&listed.key) {
            Class::DebugInfo => facts::read_debuginfo(&bytes),
            _ => facts::read_realisation(&bytes),
        });
        Ok((listed.key.clone(), read))
    })?;
    let contents: HashMap<String, Result<String, Unreadable>> = opened
        .into_iter()
        .filter_map(|(key, read)| read.map(|r| (key, r)))
        .collect();

    report.reading_time = started.elapsed();
    report.plan = plan_with(&listing, closure, &contents, options.policy, options.now);
    if options.dry_run {
        return Ok(report);
    }
    let started = Instant::now();

    let total = report.plan.deletes.len() as u64;
    let deleted_so_far = AtomicUsize::new(0);
    let tally = Mutex::new(BTreeMap::<super::plan::Kind, Tally>::new());
    let spared = AtomicUsize::new(0);
    for phase in 0..3 {
        let batch: Vec<&(Listed, Delete)> = report
            .plan
            .deletes
            .iter()
            .filter(|(_, why)| why.phase() == phase)
            .collect();
        parallel_map(&batch, options.concurrency, |(listed, why)| {
            if *why == Delete::Dangling {
                let nar = match Class::of(&listed.key) {
                    Class::NarInfo(hash) => narinfos
                        .get(&hash)
                        .and_then(|e| e.facts.as_ref().ok())
                        .map(|f| f.nar_key.clone()),
                    _ => None,
                };
                if let Some(nar) = nar {
                    if bucket.exists(&nar)? {
                        spared.fetch_add(1, Ordering::Relaxed);
                        return Ok(());
                    }
                }
            }
            bucket.delete(&listed.key)?;
            tally
                .lock()
                .expect("tally")
                .entry(Class::of(&listed.key).kind())
                .or_default()
                .add(listed.size);
            let n = deleted_so_far.fetch_add(1, Ordering::Relaxed) as u64 + 1;
            if n.is_multiple_of(1000) || n == total {
                progress(Progress::Deleted { done: n, of: total });
            }
            Ok(())
        })?;
    }
    report.deleted = tally.into_inner().expect("tally");
    report.deleting_time = started.elapsed();
    report.dangling_spared = spared.into_inner() as u64;
    if report.plan.cache_info_missing {
        bucket
            .put(
                "nix-cache-info",
                options.cache_info.as_bytes(),
                "text/x-nix-cache-info",
            )
            .context("writing nix-cache-info again")?;
        report.cache_info_written = true;
    }
    Ok(report)
}

/// Every page of the listing.
fn list_all(
    bucket: &dyn Bucket,
    progress: &(dyn Fn(Progress) + Sync),
) -> anyhow::Result<Vec<Listed>> {
    let mut all = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let page = bucket.list(token.as_deref())?;
        all.extend(page.objects);
        progress(Progress::Listed(all.len() as u64));
        match page.next {
            None => return Ok(all),
            Some(next) if token.as_deref() == Some(next.as_str()) => {
                anyhow::bail!("listing the bucket: the same continuation token twice")
            }
            Some(next) => token = Some(next),
        }
    }
    anyhow::bail!("listing the bucket: more than {MAX_PAGES} pages")
}

/// `f` over `items` with at most `concurrency` calls at once; the first error stops the rest.
fn parallel_map<T: Sync, R: Send>(
    items: &[T],
    concurrency: usize,
    f: impl Fn(&T) -> anyhow::Result<R> + Sync,
) -> anyhow::Result<Vec<R>> {
    let next = AtomicUsize::new(0);
    let failed = std::sync::atomic::AtomicBool::new(false);
    let results = Mutex::new(Vec::with_capacity(items.len()));
    let first_error = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..concurrency.clamp(1, 64).min(items.len().max(1)) {
            scope.spawn(|| loop {
                if failed.load(Ordering::Relaxed) {
                    return;
                }
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(item) = items.get(i) else { return };
                match f(item) {
                    Ok(r) => results.lock().expect("results").push((i, r)),
                    Err(e) => {
                        failed.store(true, Ordering::Relaxed);
                        first_error.lock().expect("error").get_or_insert(e);
                        return;
                    }
                }
            });
        }
    });
    if let Some(e) = first_error.into_inner().expect("error") {
        return Err(e);
    }
    let mut results = results.into_inner().expect("results");
    results.sort_by_key(|(i, _)| *i);
    Ok(results.into_iter().map(|(_, r)| r).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_800_000_000;

    /// A bucket in memory: key -> (bytes, modified); pages of 3; a number of DELETEs after
    /// which every call fails (the origin went away half way).
    #[derive(Default)]
    struct Memory {
        objects: Mutex<BTreeMap<String, (Vec<u8>, i64)>>,
        deletes_left: AtomicI64,
    }

    impl Memory {
        fn with(objects: &[(String, Vec<u8>, i64)]) -> Memory {
            let m = Memory {
                deletes_left: AtomicI64::new(i64::MAX),
                ..Memory::default()
            };
            for (k, v, age) in objects {
                m.objects
                    .lock()
                    .unwrap()
                    .insert(k.clone(), (v.clone(), NOW - age * DAY));
            }
            m
        }

        fn keys(&self) -> Vec<String> {
            self.objects.lock().unwrap().keys().cloned().collect()
        }

        fn alive(&self) -> anyhow::Result<()> {
            anyhow::ensure!(
                self.deletes_left.load(Ordering::SeqCst) > 0,
                "connection refused"
            );
            Ok(())
        }
    }

    impl Bucket for Memory {
        fn list(&self, continuation: Option<&str>) -> anyhow::Result<ListPage> {
            self.alive()?;
            let objects = self.objects.lock().unwrap();
            let start = continuation.map_or(0, |t| t.parse().unwrap());
            let page: Vec<Listed> = objects
                .iter()
                .skip(start)
                .take(3)
                .map(|(k, (v, m))| Listed {
                    key: k.clone(),
                    size: v.len() as u64,
                    modified: *m,
                })
                .collect();
            let next = (start + 3 < objects.len()).then(|| (start + 3).to_string());
            Ok(ListPage {
                objects: page,
                next,
            })
        }
        fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
            self.alive()?;
            Ok(self
                .objects
                .lock()
                .unwrap()
                .get(key)
                .map(|(v, _)| v.clone()))
        }
        fn exists(&self, key: &str) -> anyhow::Result<bool> {
            self.alive()?;
            Ok(self.objects.lock().unwrap().contains_key(key))
        }
        fn delete(&self, key: &str) -> anyhow::Result<()> {
            self.alive()?;
            self.deletes_left.fetch_sub(1, Ordering::SeqCst);
            self.objects.lock().unwrap().remove(key);
            Ok(())
        }
        fn put(&self, key: &str, body: &[u8], _: &str) -> anyhow::Result<()> {
            self.alive()?;
            self.objects
                .lock()
                .unwrap()
                .insert(key.to_string(), (body.to_vec(), NOW));
            Ok(())
        }
    }

    fn h(c: char) -> String {
        c.to_string().repeat(32)
    }

    fn nar(c: char) -> String {
        format!("nar/{}.nar.xz", c.to_string().repeat(52))
    }

    /// A narinfo of path `c` referring to `refs`, with NAR `c`.
    fn narinfo(c: char, refs: &[char]) -> Vec<u8> {
        let refs: Vec<String> = refs.iter().map(|r| format!("{}-{r}", h(*r))).collect();
        format!(
            "StorePath: /nix/store/{}-{c}\nURL: {}\nCompression: xz\nNarHash: sha256:x\n\
             NarSize: 1\nReferences: {}\n",
            h(c),
            nar(c),
            refs.join(" ")
        )
        .into_bytes()
    }

    /// Fresh a -> old b; old c alone (goes); d's NAR is gone (dangling); a young NAR in flight.
    fn cache() -> Vec<(String, Vec<u8>, i64)> {
        let mut objects = vec![("nix-cache-info".to_string(), b"StoreDir".to_vec(), 400)];
        for (c, refs, age) in [('a', vec!['b'], 1), ('b', vec![], 90), ('c', vec![], 90)] {
            objects.push((format!("{}.narinfo", h(c)), narinfo(c, &refs), age));
            objects.push((nar(c), vec![0; 1000], age));
        }
        objects.push((format!("{}.narinfo", h('d')), narinfo('d', &[]), 5));
        objects.push((nar('f'), vec![0; 10], 0));
        objects.push(("other/thing".to_string(), vec![1], 900));
        objects
    }

    fn options(dry_run: bool) -> Options {
        Options {
            policy: Policy::from_days_and_hours(30, 24),
            now: NOW,
            dry_run,
            concurrency: 4,
            cache_info: "StoreDir: /nix/store\n".into(),
        }
    }

    fn expected_after() -> Vec<String> {
        let mut keys = vec![
            format!("{}.narinfo", h('a')),
            format!("{}.narinfo", h('b')),
            nar('a'),
            nar('b'),
            nar('f'),
            "nix-cache-info".to_string(),
            "other/thing".to_string(),
        ];
        keys.sort();
        keys
    }

    #[test]
    fn a_dry_run_changes_nothing_and_reports_what_a_real_run_then_does() {
        let bucket = Memory::with(&cache());
        let before = bucket.keys();
        let dry = run(&bucket, &options(true), &|_| {}).unwrap();
        assert_eq!(bucket.keys(), before);
        assert_eq!(dry.bytes_freed(), 0);
        let would: Vec<String> = dry
            .plan
            .deletes
            .iter()
            .map(|(l, _)| l.key.clone())
            .collect();

        let real = run(&bucket, &options(false), &|_| {}).unwrap();
        let did: Vec<String> = real
            .plan
            .deletes
            .iter()
            .map(|(l, _)| l.key.clone())
            .collect();
        assert_eq!(would, did);
        assert_eq!(bucket.keys(), expected_after());
        assert_eq!(real.plan.closure.dangling.len(), 1);
        assert_eq!(
            real.bytes_freed(),
            1000 + narinfo('c', &[]).len() as u64 + narinfo('d', &[]).len() as u64
        );
        assert_eq!(real.listed, 10);
        assert_eq!(real.narinfos_read, 4);
    }

    #[test]
    fn a_run_stopped_half_way_leaves_a_whole_cache_and_the_next_one_finishes() {
        for stop_after in 0..3 {
            let bucket = Memory::with(&cache());
            bucket.deletes_left.store(stop_after, Ordering::SeqCst);
            let mut o = options(false);
            o.concurrency = 1;
            assert!(
                run(&bucket, &o, &|_| {}).is_err(),
                "stopped after {stop_after}"
            );
            // Whole: every narinfo left has its NAR, except the one dangling from the start.
            let keys = bucket.keys();
            for c in ['a', 'b', 'c'] {
                if keys.contains(&format!("{}.narinfo", h(c))) {
                    assert!(keys.contains(&nar(c)), "{c} after {stop_after}");
                }
            }
            bucket.deletes_left.store(i64::MAX, Ordering::SeqCst);
            run(&bucket, &options(false), &|_| {}).unwrap();
            assert_eq!(bucket.keys(), expected_after(), "after {stop_after}");
        }
    }

    #[test]
    fn nix_cache_info_is_written_again_when_missing() {
        let mut objects = cache();
        objects.retain(|(k, _, _)| k != "nix-cache-info");
        let bucket = Memory::with(&objects);
        let report = run(&bucket, &options(false), &|_| {}).unwrap();
        assert!(report.cache_info_written);
        assert_eq!(
            bucket.get("nix-cache-info").unwrap().unwrap(),
            b"StoreDir: /nix/store\n"
        );
    }

    #[test]
    fn a_narinfo_whose_nar_arrives_during_the_run_is_spared() {
        // The NAR of d shows up between the listing and the deletes: a HEAD finds it.
        struct Late(Memory);
        impl Bucket for Late {
            fn list(&self, c: Option<&str>) -> anyhow::Result<ListPage> {
                self.0.list(c)
            }
            fn get(&self, key: &str) -> anyhow::Result<Option<Vec<u8>>> {
                self.0.get(key)
            }
            fn exists(&self, key: &str) -> anyhow::Result<bool> {
                self.0.put(&nar('d'), b"late", "x")?;
                self.0.exists(key)
            }
            fn delete(&self, key: &str) -> anyhow::Result<()> {
                self.0.delete(key)
            }
            fn put(&self, key: &str, body: &[u8], ct: &str) -> anyhow::Result<()> {
                self.0.put(key, body, ct)
            }
        }
        let bucket = Late(Memory::with(&cache()));
        let report = run(&bucket, &options(false), &|_| {}).unwrap();
        assert_eq!(report.dangling_spared, 1);
        assert!(bucket.0.keys().contains(&format!("{}.narinfo", h('d'))));
    }

    #[test]
    fn progress_counts_what_was_listed_read_and_deleted() {
        let bucket = Memory::with(&cache());
        let seen = Mutex::new(Vec::new());
        run(&bucket, &options(false), &|p| seen.lock().unwrap().push(p)).unwrap();
        let seen = seen.into_inner().unwrap();
        assert!(seen.contains(&Progress::Listed(10)));
        assert!(seen.contains(&Progress::Read { done: 4, of: 4 }));
        assert!(seen.contains(&Progress::Deleted { done: 3, of: 3 }));
    }
}
