//! A peer of L0 in `strata bench`: the floor behind the smallest index a
//! hash lookup can have. One 4-byte slot per row, in a table at most half
//! full, found by hashing the key and probing linearly; the row's own
//! stamp confirms the key. No key bytes, no lengths, no versions, no
//! expiry, no concurrent writers: what any index adds to the floor at the
//! least, one load that the row's address depends on.

use super::workload::verify;
use anyhow::{Context, Result};
use std::fs::File;
use std::path::Path;
use strata_shm::mem::Region;

/// Seeds the table's hash; any fixed value does.
const SEED: u64 = 0x5EED;

/// Slots for `keys` rows: a power of two at least twice as many.
pub fn capacity(keys: u64) -> u64 {
    (2 * keys).next_power_of_two()
}

fn slot_of(key: &[u8], cap: u64) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(key, SEED) & (cap - 1)
}

fn slot(table: &Region, s: u64) -> u64 {
    let mut b = [0u8; 4];
    b.copy_from_slice(table.bytes(s * 4, 4));
    u64::from(u32::from_le_bytes(b))
}

/// Creates the table file at `path` and links row `i` under `key(i)` for
/// every row. Returns the file, for the caller to give the pages the
/// segment got.
pub fn build(path: &Path, keys: u64, key: impl Fn(u64) -> Vec<u8>) -> Result<(File, Region)> {
    let cap = capacity(keys);
    let (file, table) = super::create_mapped(path, cap * 4)?;
    for i in 0..keys {
        let mut s = slot_of(&key(i), cap);
        // Slots hold row + 1; zero is empty. At most half full, so a free
        // slot is always near.
        while slot(&table, s) != 0 {
            s = (s + 1) & (cap - 1);
        }
        let row = u32::try_from(i + 1).context("too many keys for the table")?;
        table.write_bytes(s * 4, &row.to_le_bytes());
    }
    Ok((file, table))
}

/// The row of key `i` (spelt `key`), found through the table and checked
/// as the floor checks its rows; None if absent.
#[inline(always)]
pub fn get<'a>(
    table: &Region,
    cap: u64,
    floor: &'a Region,
    value_bytes: u64,
    key: &[u8],
    i: u64,
) -> Option<&'a [u8]> {
    let mut s = slot_of(key, cap);
    loop {
        let row = slot(table, s);
        if row == 0 {
            return None;
        }
        let v = floor.bytes((row - 1) * value_bytes, value_bytes);
        // The stamp names the key: a row that fails it belongs to another
        // key that hashed nearby.
        if verify(v, i) {
            return Some(v);
        }
        s = (s + 1) & (cap - 1);
    }
}

#[cfg(test)]
mod tests {
    use super::super::workload::{key, stamp};
    use super::*;

    #[test]
    fn finds_every_row_and_no_absent_key() {
        let dir = std::env::temp_dir();
        let path = |what: &str| dir.join(format!("strata-min-index-{what}-{}", std::process::id()));
        let (keys, vb) = (5000u64, 64u64);
        let (_floor_file, floor) = super::super::create_mapped(&path("floor"), keys * vb).unwrap();
        let mut buf = vec![0u8; vb as usize];
        for i in 0..keys {
            stamp(&mut buf, i, 0);
            floor.write_bytes(i * vb, &buf);
        }
        let (_file, table) = build(&path("table"), keys, key).unwrap();
        let cap = capacity(keys);
        for i in 0..keys {
            let row = get(&table, cap, &floor, vb, &key(i), i).expect("a loaded key");
            assert!(verify(row, i));
        }
        // Keys never loaded: the probe ends at an empty slot.
        for i in keys..keys + 1000 {
            assert!(get(&table, cap, &floor, vb, &key(i), i).is_none());
        }
        std::fs::remove_file(path("floor")).unwrap();
        std::fs::remove_file(path("table")).unwrap();
    }
}
