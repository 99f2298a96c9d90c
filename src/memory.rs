//! The server's one memory budget, `memory_limit`, and how it is shared out: the parts of the
//! server that hold memory in proportion to load each get a share, set here and nowhere else.
//! A part's own key (`storage.max_buffer_bytes`, `ingest.max_decoding_bytes`,
//! `query.max_memory_bytes`) still wins when it is set.

use std::ffi::{c_int, c_long};

use crate::config::Config;

/// `mi_option_purge_delay` in mimalloc 3's `mi_option_e` (mimalloc.h): how many milliseconds
/// freed memory stays with the allocator before it goes back to the system (1,000 by default,
/// `options.c`).
const MIMALLOC_PURGE_DELAY: c_int = 15;

/// `mi_option_allow_thp` in the same enum: whether mimalloc asks for transparent huge pages
/// (`madvise(MADV_HUGEPAGE)` on its arenas; 1 by default on Linux).
const MIMALLOC_ALLOW_THP: c_int = 43;

#[allow(unsafe_code, reason = "mimalloc's option setter has no safe binding")]
mod allocator {
    use super::{c_int, c_long};

    unsafe extern "C" {
        pub fn mi_option_set(option: c_int, value: c_long);
        #[cfg(test)]
        pub fn mi_option_get(option: c_int) -> c_long;
    }

    /// Sets a mimalloc option.
    pub fn set(option: c_int, value: c_long) {
        // SAFETY: mi_option_set takes any option number and value; unknown numbers are ignored.
        unsafe { mi_option_set(option, value) }
    }

    /// Tells the kernel not to back this process's memory with transparent huge pages; where
    /// the kernel has no such flag, nothing changes.
    pub fn disable_transparent_huge_pages() {
        #[cfg(target_os = "linux")]
        // SAFETY: PR_SET_THP_DISABLE takes an integer flag and touches no memory of ours.
        unsafe {
            libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0);
        }
    }

    /// Reads a mimalloc option.
    #[cfg(test)]
    pub fn get(option: c_int) -> c_long {
        // SAFETY: mi_option_get takes any option number.
        unsafe { mi_option_get(option) }
    }
}

/// Sets the allocator's options the server runs with, each unless the environment sets it
/// (mimalloc reads its own `MIMALLOC_*` variables at start); `is_set(name)` says whether the
/// variable `name` is set. Called first thing in `main`.
pub fn tune_allocator(is_set: impl Fn(&str) -> bool) {
    release_freed_memory_soon(is_set("MIMALLOC_PURGE_DELAY"));
    keep_to_small_pages(is_set("MIMALLOC_ALLOW_THP"));
}

/// How long freed memory may stay with the allocator, in milliseconds.
const PURGE_DELAY_MS: c_long = 0;

/// Makes the allocator give freed memory back to the system at once. Request bodies and flushes
/// allocate and free tens of MiB at a time on many threads; with mimalloc's default delay the
/// freed pages stayed resident (the data set's load peaked at 1,463 MiB; at once 987-1,021 MiB;
/// with 100 ms 1,174 MiB: BENCHMARKS.md). mimalloc's own `MIMALLOC_PURGE_DELAY`, when set, wins.
fn release_freed_memory_soon(environment_sets_it: bool) {
    if !environment_sets_it {
        allocator::set(MIMALLOC_PURGE_DELAY, PURGE_DELAY_MS);
    }
}

/// Keeps the process's memory in 4 KiB pages, not transparent huge pages. mimalloc asks for
/// huge pages on its arenas, and with them it gives freed memory back 2 MiB at a time (its
/// `minimal_purge_size`): a huge page with one live allocation stays resident whole. Loading
/// the data set held 215-400 MiB in huge pages and peaked at 1,026 MiB; without them 833 MiB,
/// and ingest as fast (BENCHMARKS.md). The kernel's flag (`PR_SET_THP_DISABLE`) covers the
/// arenas mimalloc reserved before `main` and systems whose THP setting is `always`.
/// mimalloc's own `MIMALLOC_ALLOW_THP`, when set, wins.
fn keep_to_small_pages(environment_sets_it: bool) {
    if environment_sets_it {
        return;
    }
    allocator::set(MIMALLOC_ALLOW_THP, 0);
    allocator::disable_transparent_huge_pages();
}

/// `memory_limit` when unset: a server peak under 1 GiB, with room for the runtime, the
/// console's sessions, caches (the query runtime's Parquet metadata cache, up to
/// `query.metadata_cache_bytes`: it fills only as queries read files, 63 MiB for the
/// benchmark's 30 days of three tables) and the allocator's slack.
pub const DEFAULT_LIMIT: usize = 768 << 20;

/// The smallest budget that leaves each part enough to work.
pub const MIN_LIMIT: usize = 64 << 20;

/// What each part may hold. The four shares add up to the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Acknowledged rows of all tables waiting for a flush.
    pub buffers: usize,
    /// Not configured anywhere: a flush's sorted copy and its Parquet encoder, and compaction,
    /// hold up to about as much as the rows they write.
    pub flush_copies: usize,
    /// Request bodies being read, inflated and decoded.
    pub decoding: usize,
    /// Joins, aggregations and sorts of the queries running at once.
    pub queries: usize,
}

impl Shares {
    pub fn of(limit: usize) -> Shares {
        let buffers = limit / 4;
        let flush_copies = limit / 4;
        let decoding = limit / 8;
        let queries = limit - buffers - flush_copies - decoding;
        Shares { buffers, flush_copies, decoding, queries }
    }
}

/// Sets each part's limit from `cfg.memory_limit`, except those `explicit` says were configured.
pub fn share_out(cfg: &mut Config, explicit: &Explicit) {
    let shares = Shares::of(cfg.memory_limit);
    if !explicit.max_buffer_bytes {
        cfg.storage.max_buffer_bytes = shares.buffers;
        if !explicit.flush_bytes {
            // Several flushes fit in the buffers, so writes go on while one is written.
            cfg.storage.flush_bytes = cfg.storage.flush_bytes.min(shares.buffers / 4);
        }
    }
    if !explicit.max_decoding_bytes {
        cfg.ingest.max_decoding_bytes = shares.decoding;
    }
    if !explicit.query_memory {
        cfg.query.max_memory_bytes = shares.queries;
    }
}

/// Which of the shared-out limits the configuration (file or environment) sets itself.
#[derive(Debug, Default, Clone, Copy)]
pub struct Explicit {
    pub max_buffer_bytes: bool,
    pub flush_bytes: bool,
    pub max_decoding_bytes: bool,
    pub query_memory: bool,
}

impl Explicit {
    pub fn of(doc: &toml::Table) -> Explicit {
        let has =
            |section: &str, key: &str| doc.get(section).and_then(|s| s.as_table()).is_some_and(|s| s.contains_key(key));
        Explicit {
            max_buffer_bytes: has("storage", "max_buffer_bytes"),
            flush_bytes: has("storage", "flush_bytes"),
            max_decoding_bytes: has("ingest", "max_decoding_bytes"),
            query_memory: has("query", "max_memory_bytes"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_purge_delay_option_is_the_one_mimalloc_documents() {
        // The test binary does not run `main`: the option still has mimalloc's default, 1,000
        // ms, which no option next to it has (a layout change in a new mimalloc shows here).
        assert_eq!(allocator::get(MIMALLOC_PURGE_DELAY), 1000);
        assert_ne!(allocator::get(MIMALLOC_PURGE_DELAY - 1), 1000);
        assert_ne!(allocator::get(MIMALLOC_PURGE_DELAY + 1), 1000);
    }

    #[test]
    fn the_huge_pages_option_is_the_one_mimalloc_documents() {
        // mimalloc's defaults around it: page_cross_thread_max_reclaim 32 before it, allow_thp 1,
        // minimal_purge_size 0 after it.
        assert_eq!(allocator::get(MIMALLOC_ALLOW_THP - 1), 32);
        assert_eq!(allocator::get(MIMALLOC_ALLOW_THP), 1);
        assert_eq!(allocator::get(MIMALLOC_ALLOW_THP + 1), 0);
    }

    #[test]
    fn the_shares_add_up_to_the_limit() {
        for limit in [MIN_LIMIT, DEFAULT_LIMIT, (1 << 30) + 7] {
            let s = Shares::of(limit);
            assert_eq!(s.buffers + s.flush_copies + s.decoding + s.queries, limit);
            assert!(s.queries >= s.buffers, "queries get the largest share: {s:?}");
        }
    }
}
