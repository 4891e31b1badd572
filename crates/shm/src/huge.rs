//! Huge pages for a new segment file, on any tmpfs.
//!
//! With 4 KiB pages a read over a large segment pays a page walk for the
//! index line and another for the value; with 2 MiB pages the walks mostly
//! vanish (docs/huge-pages.md has the figures). A tmpfs mounted with
//! `huge=within_size` gives them by itself, but /dev/shm rarely is, and
//! remounting it takes root. `MADV_COLLAPSE` (Linux 6.1) builds huge pages
//! for a range of a mapped file whatever the mount says; pages built so
//! stay in the file, and every process that maps it at a 2 MiB-aligned
//! address (as [`Region::map`] does) gets them on its own page faults.

use crate::mem::{sys, Region, HUGE_PAGE};
use std::fs::File;

/// Backs `region`, a fresh mapping of all of `file`, with huge pages, one
/// 2 MiB piece at a time: it reserves the piece's first small page, which
/// the kernel then gathers, with the zero-filled rest, into one huge page.
/// Gathering pieces still empty costs much less than gathering them after
/// they were reserved in full (a copy of every small page). Stops at the
/// first piece that tmpfs has no room for or that the kernel refuses (an
/// old kernel refuses every piece); the caller's reservation of the whole
/// file then fails cleanly, or backs the rest with small pages. Calls
/// `progress(done, total)` now and then, and last with `done == total`
/// however far it got. Returns the bytes now on huge pages.
pub fn back_with_huge_pages(file: &File, region: &Region, progress: impl Fn(u64, u64)) -> u64 {
    /// Pieces between two progress reports: 128 MiB.
    const REPORT_EVERY: u64 = 64;
    let mut done = 0;
    while done + HUGE_PAGE <= region.len() {
        if sys::fallocate_range(file, done, 1).is_err() || region.collapse(done, HUGE_PAGE).is_err()
        {
            break;
        }
        done += HUGE_PAGE;
        if (done / HUGE_PAGE) % REPORT_EVERY == 0 {
            progress(done, region.len());
        }
    }
    progress(region.len(), region.len());
    done
}
