//! Thin, safe wrappers over the few system calls L0 needs beyond `std`.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::sync::Once;

/// Reserves `len` bytes of `file` so that a full tmpfs fails here with
/// ENOSPC instead of raising SIGBUS on a later page fault.
pub fn fallocate(file: &File, len: u64) -> io::Result<()> {
    fallocate_range(file, 0, len)
}

/// Reserves `off..off + len` of `file`, as [`fallocate`] does the whole.
pub fn fallocate_range(file: &File, off: u64, len: u64) -> io::Result<()> {
    let big = |_| io::Error::from_raw_os_error(libc::EFBIG);
    let off = libc::off_t::try_from(off).map_err(big)?;
    let len = libc::off_t::try_from(len).map_err(big)?;
    // SAFETY: the fd is valid for the duration of the call (borrowed from a live File).
    let rc = unsafe { libc::posix_fallocate(file.as_raw_fd(), off, len) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Bytes available to an unprivileged writer in the file system holding `dir`.
pub fn available_bytes(dir: &Path) -> io::Result<u64> {
    let c = CString::new(dir.as_os_str().as_bytes())
        .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: statvfs is plain old data; an all-zero value is a valid instance.
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a NUL-terminated path and `st` is a valid out-pointer.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

fn ofd_lock(fd: RawFd, cmd: libc::c_int, kind: libc::c_int, byte: u64) -> io::Result<libc::flock> {
    // SAFETY: flock is plain old data; zero is a valid value for every field.
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = kind as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    fl.l_start = byte as libc::off_t;
    fl.l_len = 1;
    // l_pid must be 0 for open-file-description locks.
    fl.l_pid = 0;
    // SAFETY: `fl` is a valid flock for the duration of the call; the fd is
    // owned by the caller and still open.
    let rc = unsafe { libc::fcntl(fd, cmd, &mut fl) };
    if rc == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(fl)
    }
}

/// Takes the write lock on one byte for the open file description behind
/// `fd`. Ok(false) if another description holds it.
pub fn try_lock_byte(fd: RawFd, byte: u64) -> io::Result<bool> {
    match ofd_lock(fd, libc::F_OFD_SETLK, libc::F_WRLCK, byte) {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.raw_os_error(), Some(libc::EAGAIN) | Some(libc::EACCES)) => Ok(false),
        Err(e) => Err(e),
    }
}

pub fn unlock_byte(fd: RawFd, byte: u64) -> io::Result<()> {
    ofd_lock(fd, libc::F_OFD_SETLK, libc::F_UNLCK, byte).map(|_| ())
}

/// Whether a description other than the one behind `fd` holds the byte.
pub fn byte_locked_by_other(fd: RawFd, byte: u64) -> io::Result<bool> {
    let fl = ofd_lock(fd, libc::F_OFD_GETLK, libc::F_WRLCK, byte)?;
    Ok(fl.l_type != libc::F_UNLCK as libc::c_short)
}

/// Wall-clock milliseconds from the coarse clock. Served by the vDSO, so the
/// read path can check expiry without entering the kernel.
pub fn coarse_now_ms() -> u64 {
    // SAFETY: timespec is plain old data.
    let mut ts: libc::timespec = unsafe { std::mem::zeroed() };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_REALTIME_COARSE always exists on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME_COARSE, &mut ts) };
    (ts.tv_sec as u64) * 1000 + (ts.tv_nsec as u64) / 1_000_000
}

/// Ends this process at once, as `kill -9` would. Used by failpoints.
#[cfg_attr(not(feature = "failpoints"), allow(dead_code))]
pub fn kill_self() -> ! {
    // SAFETY: sending a signal to ourselves has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
    // SIGKILL cannot be caught; this only satisfies the type checker.
    std::process::abort()
}

/// Unlinks a path; missing is not an error for the caller to handle here.
/// The effective user id of this process.
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, touches no memory and cannot fail.
    unsafe { libc::geteuid() }
}

pub fn unlink(path: &Path) -> io::Result<()> {
    std::fs::remove_file(path)
}

/// Whether this process's mapping that starts at `start` is on huge pages
/// (from its entry in /proc/self/smaps): some of it is mapped by 2 MiB
/// page-table entries already, or the kernel will back it with huge pages
/// as it is touched (`THPeligible`, which for a tmpfs file follows the
/// mount's `huge=` option).
pub fn huge_backed(start: usize) -> io::Result<bool> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let head = format!("{start:x}-");
    let mut lines = smaps.lines().skip_while(|l| !l.starts_with(&head));
    if lines.next().is_none() {
        return Ok(false);
    }
    // The fields of a mapping start with a capital letter; the next
    // mapping's header line starts with a hex digit.
    Ok(lines
        .take_while(|l| l.starts_with(|c: char| c.is_ascii_uppercase()))
        .filter_map(|l| l.split_once(':'))
        .any(|(field, v)| match field {
            "THPeligible" => v.trim() == "1",
            "ShmemPmdMapped" | "FilePmdMapped" => v.trim() != "0 kB",
            _ => false,
        }))
}

// ---- fork detection -------------------------------------------------------

/// Bumped in every child right after `fork`, so per-process state (reader
/// slots, pins, lock descriptors) can tell it was inherited.
static FORK_GENERATION: AtomicU64 = AtomicU64::new(0);
const MAX_TRACKED_FDS: usize = 4096;
/// Descriptors whose locks belong to this process alone. A forked child
/// closes its copies at once, so that it never keeps its parent's liveness
/// locks alive after the parent dies.
static TRACKED_FDS: [AtomicI32; MAX_TRACKED_FDS] = [const { AtomicI32::new(-1) }; MAX_TRACKED_FDS];
static ATFORK: Once = Once::new();

extern "C" fn after_fork_in_child() {
    for slot in TRACKED_FDS.iter() {
        let fd = slot.swap(-1, Ordering::Relaxed);
        if fd >= 0 {
            // SAFETY: close is async-signal-safe; the fd was registered by
            // this (parent) process image and is closed exactly once here.
            unsafe { libc::close(fd) };
        }
    }
    FORK_GENERATION.fetch_add(1, Ordering::Relaxed);
}

pub fn fork_generation() -> u64 {
    ATFORK.call_once(|| {
        // SAFETY: registering a handler that only touches atomics and calls
        // close(2), both allowed after fork in a multi-threaded process.
        unsafe { libc::pthread_atfork(None, None, Some(after_fork_in_child)) };
    });
    FORK_GENERATION.load(Ordering::Relaxed)
}

/// Registers a descriptor to be closed in forked children. Returns false if
/// the table is full, in which case the caller must not rely on it.
pub fn track_fd(fd: RawFd) -> bool {
    fork_generation();
    TRACKED_FDS.iter().any(|s| {
        s.compare_exchange(-1, fd, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
    })
}

pub fn untrack_fd(fd: RawFd) {
    for s in TRACKED_FDS.iter() {
        if s.compare_exchange(fd, -1, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return;
        }
    }
}

/// Closes a raw descriptor that this process owns and no `OwnedFd` holds.
pub fn close_fd(fd: RawFd) {
    // SAFETY: the caller owns `fd` (it came from `into_raw_fd`) and closes it once.
    unsafe { libc::close(fd) };
}

/// Waits on the 32-bit futex word at `addr` while it holds `expected`.
pub(super) fn futex_wait(addr: &AtomicU64, expected: u32, timeout: std::time::Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as libc::c_long,
    };
    // SAFETY: the futex word is the low half of a live, 8-aligned atomic in
    // a shared mapping (little-endian); a shared (non-PRIVATE) futex is
    // required because waiters live in other processes.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr.as_ptr() as *const u32,
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

pub(super) fn futex_wake_all(addr: &AtomicU64) {
    // SAFETY: as in futex_wait; waking has no memory effects.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            addr.as_ptr() as *const u32,
            libc::FUTEX_WAKE,
            i32::MAX,
        );
    }
}
