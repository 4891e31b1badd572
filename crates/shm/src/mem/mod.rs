//! The memory layer: every `unsafe` block of strata lives in this module.
//!
//! Protocol code (epochs, locks, slots, pins, the index) is written against
//! [`Words`], a handful of atomic operations on 64-bit words addressed by
//! byte offset. Three backends implement it: [`Region`] (a shared mapping),
//! [`HeapWords`] (plain process memory, for unit tests) and the loom backend
//! in the test suite, which is how the protocols are model-checked.

mod heap;
mod region;
pub(crate) mod sys;

pub use heap::HeapWords;
pub use region::{Region, HUGE_PAGE};

use std::sync::atomic::Ordering;
use std::time::Duration;

/// Atomic 64-bit words at byte offsets (multiples of 8) in some memory.
///
/// Out-of-range offsets are a bug in the caller, never a consequence of
/// input: callers validate every offset read from shared memory first.
pub trait Words {
    fn load(&self, off: u64, order: Ordering) -> u64;
    /// Loads the `N` words at `off`, `off + 8`, ..., one at a time in
    /// that order, each with `order`: a tag line or an entry, with one
    /// bounds check instead of one per word where the backend can.
    #[inline(always)]
    fn load_n<const N: usize>(&self, off: u64, order: Ordering) -> [u64; N] {
        std::array::from_fn(|i| self.load(off + 8 * i as u64, order))
    }
    fn store(&self, off: u64, val: u64, order: Ordering);
    fn compare_exchange(&self, off: u64, current: u64, new: u64) -> Result<u64, u64>;
    fn fetch_add(&self, off: u64, val: u64, order: Ordering) -> u64;
    fn fence(&self, order: Ordering);
    /// One step of a spin loop (a pause, or a yield under a model checker).
    fn spin(&self);
    /// Sleeps while the low 32 bits of the word at `off` equal `expected`,
    /// at most `timeout`. Spurious wake-ups are allowed.
    fn wait(&self, off: u64, expected: u32, timeout: Duration);
    /// Wakes every waiter on the word at `off`.
    fn wake_all(&self, off: u64);
}
