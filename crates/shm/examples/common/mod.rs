//! What the examples share: a seeded random generator, the access
//! patterns they replay (the shapes `strata bench` uses), their keys, and
//! scratch mappings beside the segment.

/// xorshift64: fast, seeded, and the same on every machine.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `len` indices below `n`, uniform.
#[allow(dead_code)] // not every example replays both shapes
pub fn uniform_pattern(n: u64, len: usize, rng: &mut Rng) -> Vec<usize> {
    (0..len).map(|_| rng.below(n) as usize).collect()
}

/// `len` indices below `n` drawn with Zipf 0.99, the ranks shuffled over
/// the indices so that hot keys lie anywhere.
pub fn zipf_pattern(n: u64, len: usize, rng: &mut Rng) -> Vec<usize> {
    let mut cdf = Vec::with_capacity(n as usize);
    let mut acc = 0.0;
    for r in 1..=n {
        acc += 1.0 / (r as f64).powf(0.99);
        cdf.push(acc);
    }
    let mut perm: Vec<usize> = (0..n as usize).collect();
    for i in (1..perm.len()).rev() {
        perm.swap(i, rng.below(i as u64 + 1) as usize);
    }
    (0..len)
        .map(|_| {
            let u = (rng.next() >> 11) as f64 / (1u64 << 53) as f64 * acc;
            perm[cdf.partition_point(|&c| c < u).min(n as usize - 1)]
        })
        .collect()
}

/// Key `i` as `strata bench` spells it (`key:` and ten digits), written
/// into a buffer on the stack, as a server makes a key from a request.
#[allow(dead_code)] // not every example makes its keys this way
pub fn key_into(i: u64, buf: &mut [u8; 14]) -> &[u8] {
    buf[..4].copy_from_slice(b"key:");
    let mut x = i;
    for d in buf[4..].iter_mut().rev() {
        *d = b'0' + (x % 10) as u8;
        x /= 10;
    }
    &buf[..]
}

/// A mapping of `len` zeroed bytes from a scratch file in `dir`, so that it
/// gets the same page size as a segment there. The file is unlinked at
/// once; the mapping keeps its memory until the process exits.
#[allow(dead_code)] // not every example maps scratch memory
pub fn scratch_region(
    dir: &std::path::Path,
    name: &str,
    len: u64,
) -> std::io::Result<strata_shm::mem::Region> {
    let path = dir.join(format!("strata-scratch-{}-{name}", std::process::id()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    let mapped = file
        .set_len(len)
        .and_then(|()| strata_shm::mem::Region::map(&file, len));
    // The pages a segment gets by default, so that comparisons with one
    // are of the work, not of the address translation.
    if let Ok(region) = &mapped {
        strata_shm::huge::back_with_huge_pages(&file, region, |_, _| {});
    }
    std::fs::remove_file(&path)?;
    mapped
}
