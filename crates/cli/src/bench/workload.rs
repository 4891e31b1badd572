//! Keys, self-checking values and access patterns for the benchmark.

/// splitmix64: a small, fast generator; the benchmark needs no more.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        ((self.next_u64() as u128 * n as u128) >> 64) as u64
    }
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The bytes of key `i`: `key:` and ten decimal digits.
pub const KEY_LEN: usize = 14;

/// Key `i`, written into a buffer on the stack. Readers make each key as
/// they read it, as a server makes it from a request, rather than fetch it
/// from a table of 200k keys: that table's misses are the benchmark's, not
/// the cache's, and the floor has none.
#[inline(always)]
pub fn key_into(i: u64, buf: &mut [u8; KEY_LEN]) -> &[u8] {
    buf[..4].copy_from_slice(b"key:");
    let mut x = i;
    for d in buf[4..].iter_mut().rev() {
        *d = b'0' + (x % 10) as u8;
        x /= 10;
    }
    &buf[..]
}

pub fn key(i: u64) -> Vec<u8> {
    key_into(i, &mut [0; KEY_LEN]).to_vec()
}

fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z ^= z >> 29;
    z.wrapping_mul(0xBF58_476D_1CE4_E5B9) ^ (z >> 32)
}

/// Writes the stamp of (key, version) into a value buffer: the first 8
/// bytes name both, the last 8 bytes are a checksum of the first. A torn
/// read (halves of two versions) fails the check.
pub fn stamp(buf: &mut [u8], i: u64, version: u64) {
    let head = (version << 32) | (i & 0xFFFF_FFFF);
    let n = buf.len();
    buf[..8].copy_from_slice(&head.to_le_bytes());
    buf[n - 8..].copy_from_slice(&mix(head ^ i).to_le_bytes());
}

/// Reads the first and last 8 bytes and checks them against key `i`.
#[inline(always)]
pub fn verify(v: &[u8], i: u64) -> bool {
    let n = v.len();
    if n < 16 {
        return false;
    }
    let head = u64::from_le_bytes(v[..8].try_into().unwrap_or([0; 8]));
    let tail = u64::from_le_bytes(v[n - 8..].try_into().unwrap_or([0; 8]));
    head & 0xFFFF_FFFF == i & 0xFFFF_FFFF && tail == mix(head ^ i)
}

/// Key indices to read: uniform, or Zipf(s) over a shuffled key order so
/// the hot keys are spread over the keyspace.
pub fn access_pattern(n: u64, count: usize, zipf: Option<f64>, seed: u64) -> Vec<u64> {
    let mut rng = Rng::new(seed);
    match zipf {
        None => (0..count).map(|_| rng.below(n)).collect(),
        Some(s) => {
            let mut cdf = Vec::with_capacity(n as usize);
            let mut acc = 0.0;
            for r in 1..=n {
                acc += 1.0 / (r as f64).powf(s);
                cdf.push(acc);
            }
            let mut perm: Vec<u64> = (0..n).collect();
            let mut prng = Rng::new(0xC0FFEE);
            for i in (1..perm.len()).rev() {
                let j = prng.below(i as u64 + 1) as usize;
                perm.swap(i, j);
            }
            (0..count)
                .map(|_| {
                    let u = rng.unit() * acc;
                    let rank = cdf.partition_point(|&c| c < u).min(n as usize - 1);
                    perm[rank]
                })
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_verify_and_mixes_do_not() {
        let mut a = vec![0u8; 64];
        stamp(&mut a, 7, 1);
        assert!(verify(&a, 7));
        assert!(!verify(&a, 8));
        let mut b = vec![0u8; 64];
        stamp(&mut b, 7, 2);
        let mut torn = a.clone();
        torn[56..].copy_from_slice(&b[56..]);
        assert!(!verify(&torn, 7));
    }

    #[test]
    fn keys_are_ten_digits() {
        assert_eq!(key(42), b"key:0000000042");
        assert_eq!(key(9_999_999_999), b"key:9999999999");
    }

    #[test]
    fn zipf_is_skewed() {
        let p = access_pattern(1000, 100_000, Some(0.99), 1);
        let mut counts = vec![0u32; 1000];
        for &i in &p {
            counts[i as usize] += 1;
        }
        counts.sort_unstable();
        let top: u32 = counts[990..].iter().sum();
        assert!(top > 20_000, "top 1% of keys got {top} of 100k reads");
    }
}
