use super::Words;
use std::sync::atomic::{fence, AtomicU64, Ordering};
use std::time::Duration;

/// [`Words`] over ordinary process memory. Used to unit-test protocols
/// without a mapping; never shared between processes.
pub struct HeapWords {
    words: Vec<AtomicU64>,
}

impl HeapWords {
    pub fn new(bytes: u64) -> Self {
        let n = bytes.div_ceil(8) as usize;
        Self {
            words: (0..n).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    fn word(&self, off: u64) -> &AtomicU64 {
        assert!(off % 8 == 0, "unaligned word offset {off}");
        &self.words[(off / 8) as usize]
    }
}

impl Words for HeapWords {
    fn load(&self, off: u64, order: Ordering) -> u64 {
        self.word(off).load(order)
    }
    fn store(&self, off: u64, val: u64, order: Ordering) {
        self.word(off).store(val, order)
    }
    fn compare_exchange(&self, off: u64, current: u64, new: u64) -> Result<u64, u64> {
        self.word(off)
            .compare_exchange(current, new, Ordering::SeqCst, Ordering::SeqCst)
    }
    fn fetch_add(&self, off: u64, val: u64, order: Ordering) -> u64 {
        self.word(off).fetch_add(val, order)
    }
    fn fence(&self, order: Ordering) {
        fence(order)
    }
    fn spin(&self) {
        std::thread::yield_now()
    }
    fn wait(&self, _off: u64, _expected: u32, timeout: Duration) {
        std::thread::sleep(timeout.min(Duration::from_micros(50)))
    }
    fn wake_all(&self, _off: u64) {}
}
