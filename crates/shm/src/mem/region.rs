use super::{sys, Words};
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

/// The huge page size the kernel uses for shared memory on x86-64 and, by
/// default, on arm64.
pub const HUGE_PAGE: u64 = 2 << 20;

/// `madvise` advice number 25 (Linux 6.1), spelled out because not every
/// libc the crate builds against names it.
const MADV_COLLAPSE: libc::c_int = 25;

/// A shared, read-write mapping of a whole segment file.
///
/// All byte and word access to shared memory goes through here. The mapping
/// lives as long as the `Region`; views and guards keep it alive through an
/// `Arc<Region>`.
pub struct Region {
    base: *mut u8,
    len: u64,
    /// One past the last offset a word may start at (`len - 7`, or 0):
    /// every word access checks against it, so it is one comparison.
    word_end: u64,
}

// SAFETY: the mapping is process-wide memory; all mutation of shared words
// goes through atomics, and byte ranges are handed out only under the
// segment's publication protocol (a block is written only while it is
// unreachable by readers, see docs/design/l0-segment.md).
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// Maps `len` bytes of `file`, shared, at an address aligned to
    /// [`HUGE_PAGE`], so that the kernel can map the file's huge pages (see
    /// [`Region::collapse`]) with one page-table entry each.
    pub fn map(file: &File, len: u64) -> io::Result<Region> {
        let size = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
        if size == 0 {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        let huge = HUGE_PAGE as usize;
        let span = size
            .checked_add(huge)
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EFBIG))?;
        // SAFETY: a fresh private reservation with no access, at an address
        // the kernel picks: no existing memory is affected.
        let hole = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                span,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if hole == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let start = hole as usize;
        let aligned = start.next_multiple_of(huge);
        // SAFETY: `aligned..aligned + size` lies inside the reservation made
        // above, which this function owns and nothing else uses, so
        // MAP_FIXED replaces only it. The file is held open by the caller.
        let ptr = unsafe {
            libc::mmap(
                aligned as *mut libc::c_void,
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_FIXED,
                file.as_raw_fd(),
                0,
            )
        };
        let err = (ptr == libc::MAP_FAILED).then(io::Error::last_os_error);
        // What is left of the reservation: all of it if the file mapping
        // failed, else the head and tail around it (either may be empty).
        let unused = match err {
            Some(_) => [(start, span), (0, 0)],
            None => [
                (start, aligned - start),
                (aligned + size, start + span - (aligned + size)),
            ],
        };
        for (addr, len) in unused {
            if len > 0 {
                // SAFETY: a part of the reservation made above that nothing
                // uses: not the file mapping, which lies outside it.
                unsafe { libc::munmap(addr as *mut libc::c_void, len) };
            }
        }
        if let Some(e) = err {
            return Err(e);
        }
        Ok(Region {
            base: ptr as *mut u8,
            len,
            word_end: len.saturating_sub(7),
        })
    }

    /// Asks the kernel to back `off..off + len` of the mapped file with
    /// huge pages now, whatever the tmpfs's `huge=` option says
    /// (`MADV_COLLAPSE`, Linux 6.1 and later). Both ends must be multiples
    /// of [`HUGE_PAGE`], and each huge page's range must already hold at
    /// least one allocated page of the file. Fails where the kernel cannot
    /// or will not (too old, `shmem_enabled` set to `deny`, no free huge
    /// page); the range then keeps its small pages, which work the same.
    pub fn collapse(&self, off: u64, len: u64) -> io::Result<()> {
        if off % HUGE_PAGE != 0
            || len % HUGE_PAGE != 0
            || off.checked_add(len).is_none_or(|end| end > self.len)
        {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        // SAFETY: madvise only changes how the kernel backs pages of our own
        // mapping (in bounds, checked above); a collapse keeps their
        // contents, so no access through any mapping sees a difference.
        let rc = unsafe {
            libc::madvise(
                self.base.add(off as usize) as *mut libc::c_void,
                len as usize,
                MADV_COLLAPSE,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of the first byte, for callers that check that a pointer
    /// lies inside the mapping.
    pub fn base_addr(&self) -> usize {
        self.base as usize
    }

    #[inline(always)]
    fn atomic(&self, off: u64) -> &AtomicU64 {
        assert!(
            off % 8 == 0 && off < self.word_end,
            "word offset {off} outside a region of {} bytes",
            self.len
        );
        // SAFETY: in bounds and 8-aligned (the mapping is page-aligned), and
        // every access to shared words is atomic.
        unsafe { &*(self.base.add(off as usize) as *const AtomicU64) }
    }

    /// The `N` words at `off..off + 8N`, checked once.
    #[inline(always)]
    fn atomics<const N: usize>(&self, off: u64) -> &[AtomicU64; N] {
        assert!(
            off % 8 == 0
                && off
                    .checked_add(8 * N as u64)
                    .is_some_and(|end| end <= self.len),
            "{N} words at offset {off} outside a region of {} bytes",
            self.len
        );
        // SAFETY: in bounds and 8-aligned (checked above; the mapping is
        // page-aligned), `[AtomicU64; N]` has the layout of N consecutive
        // words, and every access to shared words is atomic.
        unsafe { &*(self.base.add(off as usize) as *const [AtomicU64; N]) }
    }

    /// The bytes at `off..off+len`.
    ///
    /// Callers pass only ranges of sealed blocks (immutable until freed,
    /// and never freed while an epoch pin or a pin entry covers them) or of
    /// blocks they are writing themselves.
    #[inline(always)]
    pub fn bytes(&self, off: u64, len: u64) -> &[u8] {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len),
            "byte range {off}+{len} outside a region of {} bytes",
            self.len
        );
        // SAFETY: in bounds (checked above). The segment protocol guarantees
        // nobody writes these bytes while the returned borrow can be used:
        // sealed blocks are immutable until reclaimed, and reclamation waits
        // for every epoch pin and pin entry that could reach them.
        unsafe { std::slice::from_raw_parts(self.base.add(off as usize), len as usize) }
    }

    /// Hints the CPU to start loading the cache line at `off`, so a batch
    /// of lookups overlaps its memory latency. Out of range is a no-op.
    #[inline(always)]
    pub fn prefetch(&self, off: u64) {
        if off >= self.len {
            return;
        }
        #[cfg(target_arch = "x86_64")]
        // SAFETY: a prefetch never dereferences or faults; the address is
        // inside the mapping (checked above) anyway.
        unsafe {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            _mm_prefetch::<_MM_HINT_T0>(self.base.add(off as usize) as *const i8);
        }
    }

    /// Copies `data` to `off`. Only for blocks in the WRITING state that the
    /// caller allocated, or for sections being initialised before READY.
    pub fn write_bytes(&self, off: u64, data: &[u8]) {
        let len = data.len() as u64;
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len),
            "byte range {off}+{len} outside a region of {} bytes",
            self.len
        );
        // SAFETY: in bounds; the destination is a block no reader can reach
        // (not yet published), so no other access races with this copy, and
        // `data` cannot overlap it (it is not borrowed from a WRITING block).
        unsafe {
            std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.add(off as usize), data.len())
        }
    }

    /// Fills `off..off+len` with zeros, under the same rule as `write_bytes`.
    pub fn zero_bytes(&self, off: u64, len: u64) {
        assert!(
            off.checked_add(len).is_some_and(|end| end <= self.len),
            "byte range {off}+{len} outside a region of {} bytes",
            self.len
        );
        // SAFETY: as in write_bytes.
        unsafe { std::ptr::write_bytes(self.base.add(off as usize), 0, len as usize) }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly what `map` mapped; every borrow into it is
        // tied to `&self`, and views hold an Arc<Region>, so none outlive it.
        unsafe {
            libc::munmap(self.base as *mut libc::c_void, self.len as usize);
        }
    }
}

impl Words for Region {
    #[inline(always)]
    fn load(&self, off: u64, order: Ordering) -> u64 {
        self.atomic(off).load(order)
    }
    #[inline(always)]
    fn load_n<const N: usize>(&self, off: u64, order: Ordering) -> [u64; N] {
        let words = self.atomics::<N>(off);
        std::array::from_fn(|i| words[i].load(order))
    }
    #[inline(always)]
    fn store(&self, off: u64, val: u64, order: Ordering) {
        self.atomic(off).store(val, order)
    }
    #[inline(always)]
    fn compare_exchange(&self, off: u64, current: u64, new: u64) -> Result<u64, u64> {
        self.atomic(off)
            .compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
    }
    #[inline(always)]
    fn fetch_add(&self, off: u64, val: u64, order: Ordering) -> u64 {
        self.atomic(off).fetch_add(val, order)
    }
    #[inline(always)]
    fn fence(&self, order: Ordering) {
        fence(order)
    }
    fn spin(&self) {
        std::hint::spin_loop()
    }
    fn wait(&self, off: u64, expected: u32, timeout: Duration) {
        sys::futex_wait(self.atomic(off), expected, timeout)
    }
    fn wake_all(&self, off: u64) {
        sys::futex_wake_all(self.atomic(off))
    }
}
