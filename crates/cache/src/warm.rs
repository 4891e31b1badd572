//! Warming: loading keys from Redis into L0 ahead of traffic, in
//! pipelined batches: a list of keys, the keys matching a pattern (SCAN),
//! or a file of the keys an L0 held as its most frequent, so that a new
//! machine warms with what was popular on an old one.
//!
//! The file has one key per line, bytes outside printable ASCII (and the
//! backslash) written as `\xNN`.

use crate::cache::Cache;
use crate::error::{Error, Result};
use std::collections::BinaryHeap;
use std::io::{BufRead, BufWriter, Write};
use std::path::Path;

/// Keys fetched per pipelined request.
const BATCH: usize = 256;

/// What a warming did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WarmReport {
    /// Keys looked at.
    pub keys: u64,
    /// Of those, already in L0.
    pub present: u64,
    /// Fetched from Redis and stored in L0.
    pub loaded: u64,
    /// Not in Redis.
    pub missing: u64,
}

/// Reports progress: (keys done, keys in all, if known).
pub type WarmProgress<'a> = &'a dyn Fn(u64, Option<u64>);

impl Cache {
    /// Loads `keys` from Redis into L0 (those not there already), in
    /// pipelined batches.
    pub fn warm_keys<K: AsRef<[u8]>>(
        &self,
        keys: &[K],
        progress: Option<WarmProgress<'_>>,
    ) -> Result<WarmReport> {
        let mut rep = WarmReport::default();
        let total = keys.len() as u64;
        for chunk in keys.chunks(BATCH) {
            self.warm_chunk(chunk, &mut rep)?;
            if let Some(p) = progress {
                p(rep.keys, Some(total));
            }
        }
        Ok(rep)
    }

    fn warm_chunk<K: AsRef<[u8]>>(&self, chunk: &[K], rep: &mut WarmReport) -> Result<()> {
        let seg = self.segment();
        let mut wanted: Vec<&[u8]> = Vec::with_capacity(chunk.len());
        for k in chunk {
            let k = k.as_ref();
            if seg.contains(k)? {
                rep.present += 1;
            } else {
                wanted.push(k);
            }
        }
        rep.keys += chunk.len() as u64;
        for v in self.fetch_many_copied(&wanted)? {
            match v {
                Some(_) => rep.loaded += 1,
                None => rep.missing += 1,
            }
        }
        Ok(())
    }

    /// Loads every key of Redis matching `pattern` (a Redis glob) into
    /// L0, scanning with SCAN (every primary of a cluster in turn).
    pub fn warm_pattern(
        &self,
        pattern: &str,
        progress: Option<WarmProgress<'_>>,
    ) -> Result<WarmReport> {
        let Some(redis) = self.redis_tier() else {
            return Err(Error::InvalidConfig("warming needs Redis".into()));
        };
        let mut rep = WarmReport::default();
        let mut failed = None;
        redis
            .scan(pattern, BATCH, &mut |keys| {
                // strata's own companion keys are not values.
                let keys: Vec<Vec<u8>> = keys
                    .into_iter()
                    .filter(|k| !k.starts_with(b"strata:"))
                    .collect();
                if let Err(e) = self.warm_chunk(&keys, &mut rep) {
                    failed = Some(e);
                    return Err(strata_tiers::Error::Upstream {
                        tier: "redis",
                        reason: "warming stopped".into(),
                    });
                }
                if let Some(p) = progress {
                    p(rep.keys, None);
                }
                Ok(())
            })
            .map_err(|e| failed.take().unwrap_or(Error::Upstream(e)))?;
        Ok(rep)
    }

    /// Warms from a file that `save_hot_keys` wrote.
    pub fn warm_file(&self, path: &Path, progress: Option<WarmProgress<'_>>) -> Result<WarmReport> {
        let f = std::fs::File::open(path)
            .map_err(|e| Error::InvalidConfig(format!("cannot read {}: {e}", path.display())))?;
        let mut keys = Vec::new();
        for (n, line) in std::io::BufReader::new(f).lines().enumerate() {
            let line =
                line.map_err(|e| Error::InvalidConfig(format!("{}: {e}", path.display())))?;
            if line.is_empty() {
                continue;
            }
            keys.push(unescape(&line).ok_or_else(|| {
                Error::InvalidConfig(format!(
                    "{} line {}: a bad \\x escape",
                    path.display(),
                    n + 1
                ))
            })?);
        }
        self.warm_keys(&keys, progress)
    }

    /// Writes the `n` keys L0 holds that the shared sketch counts as most
    /// frequent, most frequent first, one per line. Returns how many.
    pub fn save_hot_keys(&self, path: &Path, n: usize) -> Result<usize> {
        let seg = self.segment();
        // A min-heap of the n hottest so far.
        let mut heap: BinaryHeap<std::cmp::Reverse<(u32, Vec<u8>)>> = BinaryHeap::new();
        for key in seg.keys() {
            if key.first() == Some(&0) {
                continue; // strata's own keys (leases, versions)
            }
            let f = seg.frequency(&key);
            if heap.len() < n {
                heap.push(std::cmp::Reverse((f, key)));
            } else if heap.peek().is_some_and(|m| m.0 .0 < f) {
                heap.pop();
                heap.push(std::cmp::Reverse((f, key)));
            }
        }
        let mut hot: Vec<(u32, Vec<u8>)> = heap.into_iter().map(|r| r.0).collect();
        hot.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let io = |e: std::io::Error| {
            Error::InvalidConfig(format!("cannot write {}: {e}", path.display()))
        };
        let mut out = BufWriter::new(std::fs::File::create(path).map_err(io)?);
        for (_, key) in &hot {
            out.write_all(escape(key).as_bytes()).map_err(io)?;
            out.write_all(b"\n").map_err(io)?;
        }
        out.flush().map_err(io)?;
        Ok(hot.len())
    }
}

fn escape(key: &[u8]) -> String {
    let mut s = String::with_capacity(key.len());
    for &b in key {
        match b {
            b'\\' => s.push_str("\\\\"),
            0x21..=0x7e => s.push(b as char),
            _ => s.push_str(&format!("\\x{b:02x}")),
        }
    }
    s
}

fn unescape(line: &str) -> Option<Vec<u8>> {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] != b'\\' {
            out.push(b[i]);
            i += 1;
            continue;
        }
        match b.get(i + 1)? {
            b'\\' => {
                out.push(b'\\');
                i += 2;
            }
            b'x' => {
                let hex = std::str::from_utf8(b.get(i + 2..i + 4)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 4;
            }
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip_through_the_file_format() {
        for key in [&b"emb:42"[..], b"a b\\c", b"\x00\xff\n\r", b""] {
            let line = escape(key);
            assert!(!line.contains('\n'));
            assert_eq!(unescape(&line).unwrap(), key);
        }
        assert!(unescape("bad\\q").is_none());
        assert!(unescape("bad\\x4").is_none());
    }
}
