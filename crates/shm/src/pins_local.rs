//! This process's side of the pin pages: which pages it owns and which of
//! their entries are free. Shared by all threads behind a mutex; views
//! taken before a fork are never honoured in the child.

use crate::error::{Error, Result};
use crate::layout::PIN_ENTRIES;
use crate::liveness::OfdLiveness;
use crate::mem::{sys, Region};
use crate::pins::PinPages;
use crate::segment::Inner;
use std::os::fd::RawFd;

pub(crate) struct PinLocal {
    fork_gen: u64,
    fd: Option<RawFd>,
    pages: Vec<u64>,
    free: Vec<u64>,
}

impl PinLocal {
    pub fn new() -> Self {
        PinLocal {
            fork_gen: sys::fork_generation(),
            fd: None,
            pages: Vec::new(),
            free: Vec::new(),
        }
    }

    /// Forgets everything inherited from a parent process: the pages are
    /// the parent's, and the descriptor was closed at fork.
    fn refresh(&mut self) {
        let gen = sys::fork_generation();
        if gen != self.fork_gen {
            self.fork_gen = gen;
            self.fd = None;
            self.pages.clear();
            self.free.clear();
        }
    }

    /// A free entry's offset, claiming a new page when needed.
    pub fn acquire(&mut self, inner: &Inner) -> Result<(u64, u64)> {
        self.refresh();
        if self.free.is_empty() {
            let fd = match self.fd {
                Some(fd) => fd,
                None => {
                    let fd = inner.new_lock_fd()?;
                    self.fd = Some(fd);
                    fd
                }
            };
            let page = inner
                .pin_pages
                .claim(
                    &*inner.region,
                    &OfdLiveness { fd },
                    std::process::id() as u64,
                    &self.pages,
                )
                .ok_or_else(|| {
                    Error::Full(format!(
                        "all {} pin pages are taken; too many processes hold views",
                        inner.pin_pages.count
                    ))
                })?;
            self.pages.push(page);
            self.free.extend(
                (0..PIN_ENTRIES)
                    .rev()
                    .map(|e| inner.pin_pages.entry_off(page, e)),
            );
        }
        let entry = self
            .free
            .pop()
            .ok_or_else(|| Error::Full("no free pin entry".into()))?;
        Ok((entry, self.fork_gen))
    }

    /// Returns an entry; the caller has cleared it already.
    pub fn give_back(&mut self, entry: u64, gen: u64) {
        if gen == self.fork_gen {
            self.free.push(entry);
        }
    }

    pub fn release_all(&mut self, region: &Region, pages: &PinPages) {
        self.refresh();
        if let Some(fd) = self.fd.take() {
            let live = OfdLiveness { fd };
            for &p in &self.pages {
                pages.release(region, &live, p);
            }
            sys::untrack_fd(fd);
            sys::close_fd(fd);
        }
        self.pages.clear();
        self.free.clear();
    }
}
