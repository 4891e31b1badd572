//! Per-thread reader slots. A thread claims a slot the first time it touches
//! a segment, through a descriptor of its own whose byte lock marks the slot
//! alive, and gives it back when the thread ends. A forked child never uses
//! its parent's slots: it sees a new fork generation and claims its own.

use crate::error::{Error, Result};
use crate::liveness::OfdLiveness;
use crate::mem::{sys, Region};
use crate::segment::Inner;
use crate::slots::Slots;
use std::cell::{Cell, RefCell};
use std::os::fd::RawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub(crate) struct ThreadSlot {
    uid: u64,
    fork_gen: u64,
    pub idx: u64,
    pub token: u64,
    fd: RawFd,
    region: Arc<Region>,
    slots: Slots,
    closed: Arc<AtomicBool>,
    /// Nesting depth of epoch pins held by guards on this thread.
    pub depth: Cell<u32>,
    /// Counts `revalidate` calls, to sample their usage-count bumps.
    pub sample: Cell<u32>,
    /// Counts this thread's sketch increments, to batch them toward the
    /// sketch's halving period.
    pub bumps: Cell<u32>,
    /// The hash of this thread's last miss that the sketch counted: a put
    /// of that key right after is the same access, not a second one.
    pub last_miss: Cell<u64>,
}

impl ThreadSlot {
    pub fn live(&self) -> OfdLiveness {
        OfdLiveness { fd: self.fd }
    }
}

impl Drop for ThreadSlot {
    fn drop(&mut self) {
        if self.fork_gen != sys::fork_generation() {
            // Inherited across fork: the parent owns the slot, and the
            // descriptor was already closed in this child.
            return;
        }
        self.slots.release(&*self.region, &self.live(), self.idx);
        sys::untrack_fd(self.fd);
        sys::close_fd(self.fd);
    }
}

thread_local! {
    static SLOTS: RefCell<Vec<Rc<ThreadSlot>>> = const { RefCell::new(Vec::new()) };
}

/// This thread's slot in `inner`'s segment, claimed on first use.
#[inline]
pub(crate) fn thread_slot(inner: &Inner) -> Result<Rc<ThreadSlot>> {
    let gen = sys::fork_generation();
    let found = SLOTS
        .try_with(|v| {
            v.borrow()
                .iter()
                .find(|s| s.uid == inner.uid && s.fork_gen == gen)
                .cloned()
        })
        .ok()
        .flatten();
    match found {
        Some(s) => Ok(s),
        None => claim(inner, gen),
    }
}

#[cold]
fn claim(inner: &Inner, gen: u64) -> Result<Rc<ThreadSlot>> {
    let _ = SLOTS.try_with(|v| {
        v.borrow_mut()
            .retain(|s| s.fork_gen == gen && !s.closed.load(Ordering::Relaxed))
    });
    let fd = inner.new_lock_fd()?;
    let live = OfdLiveness { fd };
    let Some((idx, token)) = inner
        .slots
        .claim(&*inner.region, &live, std::process::id() as u64)
    else {
        sys::untrack_fd(fd);
        sys::close_fd(fd);
        return Err(Error::TooManyReaders(inner.slots.count));
    };
    let slot = Rc::new(ThreadSlot {
        uid: inner.uid,
        fork_gen: gen,
        idx,
        token,
        fd,
        region: inner.region.clone(),
        slots: inner.slots,
        closed: inner.closed.clone(),
        depth: Cell::new(0),
        sample: Cell::new(0),
        bumps: Cell::new(0),
        last_miss: Cell::new(0),
    });
    // During thread teardown the registry may be gone; the slot then lives
    // only as long as this call's caller holds it.
    let _ = SLOTS.try_with(|v| v.borrow_mut().push(slot.clone()));
    inner.ensure_janitor();
    Ok(slot)
}

/// Gives back this thread's slot in the segment `uid`, if it has one.
pub(crate) fn release_current(uid: u64) {
    let _ = SLOTS.try_with(|v| v.borrow_mut().retain(|s| s.uid != uid));
}
