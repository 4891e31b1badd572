//! Huge pages for a new segment file, on any tmpfs.
//!
//! With 4 KiB pages a read over a large segment pays a page walk for the
//! index line and another for the value; with 2 MiB pages the walks are
//! shorter and far fewer (docs/huge-pages.md has what that buys). A tmpfs mounted with
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
/// they were reserved in full (a copy of every small page).
///
/// It stops at the first piece that tmpfs has no room for (the caller's
/// reservation of the whole file then fails cleanly), or when the kernel
/// cannot gather at all (too old, or tmpfs huge pages denied). A piece the
/// kernel fails to gather for want of a free 2 MiB block, or for a
/// transient reason, keeps its small pages, and the next pieces are tried;
/// after [`GIVE_UP`] such failures in a row it stops, since memory is then
/// too fragmented for more. Calls `progress(done, total)` now and then,
/// and last with `done == total` however far it got. Returns the bytes now
/// on huge pages.
pub fn back_with_huge_pages(file: &File, region: &Region, progress: impl Fn(u64, u64)) -> u64 {
    /// Pieces between two progress reports: 128 MiB.
    const REPORT_EVERY: u64 = 64;
    let (mut off, mut huge, mut failed) = (0, 0, 0);
    while off + HUGE_PAGE <= region.len() {
        if sys::fallocate_range(file, off, 1).is_err() {
            break;
        }
        match region.collapse(off, HUGE_PAGE) {
            Ok(()) => {
                huge += HUGE_PAGE;
                failed = 0;
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
            Err(_) => {
                failed += 1;
                if failed == GIVE_UP {
                    break;
                }
            }
        }
        off += HUGE_PAGE;
        if (off / HUGE_PAGE) % REPORT_EVERY == 0 {
            progress(off, region.len());
        }
    }
    progress(region.len(), region.len());
    huge
}

/// Failed pieces in a row after which building huge pages stops.
pub const GIVE_UP: u32 = 16;
