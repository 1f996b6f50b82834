//! Closure-aware garbage collection of the cache's bucket.
//!
//! A Nix cache breaks when a narinfo it serves points at a NAR, or at a reference, that is no
//! longer there: Nix treats that as a hard error, not as a miss. So objects are never expired by
//! age alone. What is kept is decided by reachability, as Nix's own store GC does:
//!
//! - the roots are the narinfos written within the retention period;
//! - everything in their closure (`References`, followed to the end) is kept, however old;
//! - a NAR, listing, log, debug-info or realisation is kept while a kept narinfo refers to it,
//!   and anything else goes only once it is older than a grace period, because a push in
//!   flight writes its NAR before its narinfo.
//!
//! Module map:
//! - [`facts`]: what gc reads out of an object (a narinfo's NAR and references, a debug-info
//!   file's archive, a realisation's output); pure parsing, lenient like Nix's own reader.
//! - [`plan`]: the pure decisions: [`plan::closure`] of the roots, then
//!   [`plan::Decider::judge`] for each listed object, and [`plan::plan_gc`] that composes both
//!   for a whole listing. No clock, no network: time and contents are arguments.

pub mod bucket;
pub mod facts;
pub mod plan;
pub mod run;
