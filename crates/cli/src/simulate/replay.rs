//! Replays a trace through the code that serves it: a policy as L1 runs
//! it, the L1 tier itself, or a real L0 segment. Each replay is a
//! cache-aside client: get, and put on a miss.

use super::trace::Trace;
use anyhow::{Context, Result};
use std::path::Path;
use strata_shm::layout::MIN_ENTRIES;
use strata_shm::{Policy, PutOptions, Segment, SegmentOptions};
use strata_tiers::policy::PolicyKind;
use strata_tiers::{L1Config, L1Tier, L1};

/// A cache's size: a number of entries (every value weighs 1) or of bytes
/// (values weigh their size).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Size {
    Entries(u64),
    Bytes(u64),
}

impl Size {
    pub fn value(self) -> u64 {
        match self {
            Size::Entries(n) | Size::Bytes(n) => n,
        }
    }
    pub fn by_bytes(self) -> bool {
        matches!(self, Size::Bytes(_))
    }
}

/// What a replay found.
#[derive(Clone, Copy, Debug, Default)]
pub struct Outcome {
    pub hits: u64,
    pub byte_hits: u64,
    pub requests: u64,
    pub bytes: u64,
    /// For L0: the entries (or bytes) it really held at its fullest, when
    /// that is not the size asked for.
    pub held: Option<u64>,
}

impl Outcome {
    pub fn hit_ratio(&self) -> f64 {
        self.hits as f64 / self.requests.max(1) as f64
    }
    pub fn byte_hit_ratio(&self) -> f64 {
        self.byte_hits as f64 / self.bytes.max(1) as f64
    }
    fn count(&mut self, hit: bool, size: u32) {
        self.requests += 1;
        self.bytes += u64::from(size);
        if hit {
            self.hits += 1;
            self.byte_hits += u64::from(size);
        }
    }
}

fn weight(size: Size, value: u32) -> u32 {
    if size.by_bytes() {
        value
    } else {
        1
    }
}

/// A policy on its own, in one piece (no shards).
pub fn policy(kind: PolicyKind, t: &Trace, size: Size, tick: &mut dyn FnMut(usize)) -> Outcome {
    let entries = match size {
        Size::Entries(n) => n as usize,
        Size::Bytes(n) => (n / 1024) as usize,
    };
    let mut p = kind.build(size.value(), entries);
    let mut out = Outcome::default();
    let mut evicted = Vec::new();
    for (i, (&k, &s)) in t.keys.iter().zip(&t.sizes).enumerate() {
        if i & 0xFFFF == 0 {
            tick(i);
        }
        evicted.clear();
        let hit = p.access(k, weight(size, s), &mut evicted);
        out.count(hit, s);
    }
    out
}

/// The L1 tier with its default policy and sharding. By bytes, each
/// entry also weighs its key and bookkeeping, as in service.
pub fn l1(t: &Trace, size: Size, tick: &mut dyn FnMut(usize)) -> Outcome {
    let l1: L1<()> = L1::new(&L1Config::new(size.value()));
    let mut out = Outcome::default();
    for (i, (&k, &s)) in t.keys.iter().zip(&t.sizes).enumerate() {
        if i & 0xFFFF == 0 {
            tick(i);
        }
        let key = k.to_le_bytes();
        let hit = l1.get(&key).is_some();
        if !hit {
            let w = match size {
                Size::Entries(_) => 1,
                Size::Bytes(_) => L1Tier::weight_of(&key, &[]) + s as usize,
            };
            l1.insert(&key, (), w, None);
        }
        out.count(hit, s);
    }
    out
}

/// A real L0 segment in `dir`, with `policy` (its default if None),
/// removed after.
///
/// By entries, `max_entries` is the bound: values are one byte and the
/// arena is ample. Each shard holds at most its share, so a trace whose
/// keys fall unevenly on the shards may hold a few fewer; `held` reports
/// what it held at its fullest. By bytes, the segment's memory is the
/// size (at least 8 MiB); its index and tables take part of it.
pub fn l0(
    t: &Trace,
    size: Size,
    policy: Option<Policy>,
    dir: &Path,
    tick: &mut dyn FnMut(usize),
) -> Result<Outcome> {
    match size {
        Size::Entries(want) => l0_once(t, size, policy, want.max(MIN_ENTRIES), dir, tick),
        Size::Bytes(_) => l0_once(t, size, policy, 0, dir, tick),
    }
}

fn l0_once(
    t: &Trace,
    size: Size,
    policy: Option<Policy>,
    max_entries: u64,
    dir: &Path,
    tick: &mut dyn FnMut(usize),
) -> Result<Outcome> {
    let name = format!(
        "simulate-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default()
    );
    let mut opts = SegmentOptions::default()
        .dir(dir)
        .huge_pages(false)
        .janitor(false);
    if let Some(p) = policy {
        opts = opts.policy(p);
    }
    opts = match size {
        Size::Entries(_) => opts
            .memory((max_entries * 512).max(16 << 20).next_multiple_of(2 << 20))
            .max_entries(max_entries),
        Size::Bytes(b) => opts.memory(b.max(8 << 20).next_multiple_of(2 << 20)),
    };
    let seg = Segment::create(&name, &opts)
        .with_context(|| format!("cannot create an L0 segment in {}", dir.display()))?;
    // Remove the file now: the mapping lives on, and nothing is left
    // behind if the replay is interrupted.
    let _ = Segment::unlink(&name, dir);
    let put = PutOptions::default();
    let max_value = seg.max_value_size();
    let mut out = Outcome::default();
    let mut peak = 0u64;
    let mut value = vec![0u8; 1];
    for (i, (&k, &s)) in t.keys.iter().zip(&t.sizes).enumerate() {
        if i & 0xFFFF == 0 {
            tick(i);
        }
        if i & 0xFFF == 0 {
            let st = seg.stats()?;
            peak = peak.max(if size.by_bytes() {
                st.used_bytes
            } else {
                st.entries
            });
        }
        let key = k.to_le_bytes();
        let hit = seg.get(&key)?.is_some();
        if !hit {
            let len = if size.by_bytes() {
                (s as u64).min(max_value) as usize
            } else {
                1
            };
            value.resize(len, 0);
            match seg.put(&key, &value, &put) {
                Ok(_) => {}
                // A full segment whose space readers still hold is not
                // reached here (one thread, no views); anything else is.
                Err(e) => return Err(e).context("L0 refused a put during the replay"),
            }
        }
        out.count(hit, s);
    }
    let st = seg.stats()?;
    peak = peak.max(if size.by_bytes() {
        st.used_bytes
    } else {
        st.entries
    });
    out.held = Some(peak);
    Ok(out)
}
