//! Namespaces with an O(1) version bump. A namespace's keys reach the
//! tiers as `ns \0 version \0 key`; bumping the version makes every entry
//! of the namespace unreachable at once, with no scan, and eviction and
//! TTLs take the old entries later.
//!
//! Where the version lives: without Redis, in L0 (`\0ns:` + name), shared
//! by the machine's processes and bumped under the shard lock. It starts
//! at a random number, not 0, so that if L0 ever evicts it, the version
//! that replaces it is a new one: the old entries stay unreachable rather
//! than coming back. With
//! Redis, the counter `strata:ns:<name>` in Redis is authoritative (bumped
//! with INCR); each machine caches it in L0 for `NS_VERSION_TTL`, which
//! bounds how long another machine keeps reading the old version.

use crate::cache::Cache;
use crate::error::Result;
use crate::value::Value;
use std::time::Duration;
use strata_shm::{PutOptions, PutOutcome};

/// How long a machine trusts its cached copy of a namespace's version
/// when Redis holds the authoritative one.
pub const NS_VERSION_TTL: Duration = Duration::from_secs(1);

fn local_key(name: &str) -> Vec<u8> {
    local_key_of(name.as_bytes())
}

/// The L0 key of a namespace's version (also dropped by invalidation
/// messages of a bump on another machine).
pub(crate) fn local_key_of(name: &[u8]) -> Vec<u8> {
    [b"\0ns:".as_slice(), name].concat()
}

fn redis_key(name: &str) -> Vec<u8> {
    [b"strata:ns:".as_slice(), name.as_bytes()].concat()
}

fn decode(v: &[u8]) -> u64 {
    v.get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .unwrap_or(0)
}

/// A starting version no earlier one is likely to have had.
fn random_version() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0),
    );
    h.finish() >> 1
}

/// A view of a cache under one namespace: the same calls, with keys under
/// the namespace's current version.
pub struct Namespace<'c> {
    cache: &'c Cache,
    name: String,
}

impl Cache {
    pub fn namespace(&self, name: &str) -> Namespace<'_> {
        Namespace {
            cache: self,
            name: name.to_string(),
        }
    }

    /// The namespace's current version.
    pub fn namespace_version(&self, name: &str) -> Result<u64> {
        let seg = self.segment();
        let lk = local_key(name);
        // Read on every call under the namespace, so the eviction policy
        // must see it: a version L0 lets go comes back as a new one (see
        // above), and every entry of the namespace with the old.
        if let Some(g) = seg.get_uncounted(&lk)? {
            return Ok(decode(&g));
        }
        let Some(l2) = self.l2() else {
            let fresh = random_version();
            seg.put_if(
                &lk,
                &fresh.to_le_bytes(),
                &PutOptions::default(),
                strata_shm::PutIf::Absent,
            )?;
            return Ok(seg.peek(&lk)?.map(|g| decode(&g)).unwrap_or(fresh));
        };
        let v = match l2.get(&redis_key(name))? {
            Some(f) => std::str::from_utf8(&f.value)
                .ok()
                .and_then(|s| s.parse::<u64>().ok())
                .unwrap_or(0),
            None => 0,
        };
        self.remember_version(&lk, v)?;
        Ok(v)
    }

    /// Caches a version read from (or bumped in) Redis in L0.
    fn remember_version(&self, lk: &[u8], v: u64) -> Result<()> {
        let ttl = PutOptions::default().ttl(NS_VERSION_TTL);
        self.segment().put(lk, &v.to_le_bytes(), &ttl)?;
        Ok(())
    }

    /// Moves the namespace to a new version: its entries become
    /// unreachable (on this machine at once; on others within
    /// `NS_VERSION_TTL` when Redis holds the version). Returns the new
    /// version.
    pub fn bump_namespace(&self, name: &str) -> Result<u64> {
        let seg = self.segment();
        let lk = local_key(name);
        match self.l2() {
            Some(l2) => {
                let v = l2.incr(&redis_key(name))?.max(0) as u64;
                self.remember_version(&lk, v)?;
                // Other machines drop their cached copy at once.
                if let Some(inv) = self.invalidation() {
                    inv.publish(crate::invalidation::OP_NAMESPACE, &[name.as_bytes()])?;
                }
                Ok(v)
            }
            None => {
                let mut next = 0;
                seg.update(&lk, &PutOptions::default(), |cur| {
                    next = cur
                        .map(decode)
                        .unwrap_or_else(random_version)
                        .wrapping_add(1);
                    Some(next.to_le_bytes().to_vec())
                })?;
                Ok(next)
            }
        }
    }
}

impl Namespace<'_> {
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn version(&self) -> Result<u64> {
        self.cache.namespace_version(&self.name)
    }

    /// The key that reaches the tiers: `ns \0 version \0 key`.
    pub fn key(&self, key: &[u8]) -> Result<Vec<u8>> {
        let v = self.version()?;
        let mut k = Vec::with_capacity(self.name.len() + key.len() + 24);
        k.extend_from_slice(self.name.as_bytes());
        k.push(0);
        k.extend_from_slice(v.to_string().as_bytes());
        k.push(0);
        k.extend_from_slice(key);
        Ok(k)
    }

    pub fn get(&self, key: &[u8]) -> Result<Option<Value>> {
        self.cache.get(&self.key(key)?)
    }

    pub fn put(&self, key: &[u8], value: &[u8], opts: &PutOptions) -> Result<PutOutcome> {
        self.cache.put(&self.key(key)?, value, opts)
    }

    pub fn delete(&self, key: &[u8]) -> Result<bool> {
        self.cache.delete(&self.key(key)?)
    }

    pub fn bump(&self) -> Result<u64> {
        self.cache.bump_namespace(&self.name)
    }
}
