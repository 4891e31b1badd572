//! Decoded objects in L1: a process that turns a value's bytes into
//! something costlier to rebuild (a Python object behind `@strata.cached`,
//! a deserialized struct) keeps the result in its L1, in place of the
//! bytes, so that the next read skips the decoding.
//!
//! The object is kept under the value's key and dropped like any L1 entry
//! when some process changes the key: a reader takes a ticket (the key's
//! place in L0's change log) before it reads the bytes, and the object is
//! kept only if the key has not changed since. It lives no longer than the
//! value it came from: its TTL is what L0 has left of the value's, or the
//! caller's bound when L0 does not hold it.

use crate::cache::Cache;
use std::any::Any;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;
use strata_tiers::{L1Tier, L1Value};

/// Where a key stood in L0's change log before a read; see
/// [`Cache::object_ticket`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ObjectTicket {
    hash: u64,
    position: (u64, u64),
    wrote: bool,
}

impl ObjectTicket {
    /// Notes that the caller itself wrote the key once since taking the
    /// ticket (it computed the value it decoded from, say): that one
    /// change is its own and does not refuse the object.
    pub fn wrote(mut self) -> Self {
        self.wrote = true;
        self
    }
}

impl Cache {
    /// The object kept in L1 for `key` if there is one of type `T` and
    /// its key has not changed since it was kept. None without L1.
    pub fn get_object<T: Any + Send + Sync>(&self, key: &[u8]) -> Option<Arc<T>> {
        let l1 = self.l1.as_ref()?;
        let (v, _) = l1.get(key, true)?;
        v.object?.downcast::<T>().ok()
    }

    /// The ticket to take before reading the bytes an object will be
    /// decoded from. None without L1.
    pub fn object_ticket(&self, key: &[u8]) -> Option<ObjectTicket> {
        self.l1.as_ref()?;
        let seg = self.segment();
        let hash = seg.key_hash(key);
        Some(ObjectTicket {
            hash,
            position: seg.change_position(hash),
            wrote: false,
        })
    }

    /// Keeps `object`, decoded from `key`'s value as read after `ticket`
    /// was taken, unless the key changed since (other than by the caller's
    /// own write, see [`ObjectTicket::wrote`]). `size` is what the object
    /// is charged against L1's capacity (its encoded size is a fair
    /// measure). It expires with the value in L0, or after `ttl` when L0
    /// does not hold the value (None: never). Whether L1 took it.
    pub fn keep_object<T: Any + Send + Sync>(
        &self,
        ticket: ObjectTicket,
        key: &[u8],
        object: Arc<T>,
        size: usize,
        ttl: Option<Duration>,
    ) -> bool {
        let Some(l1) = &self.l1 else {
            return false;
        };
        let seg = self.segment();
        let now = seg.now_ms();
        let ttl = match seg.peek(key) {
            Ok(Some(g)) => match g.expires_at_ms() {
                Some(at) if at <= now => return false,
                Some(at) => Some(Duration::from_millis(at - now)),
                None => ttl,
            },
            _ => ttl,
        };
        let w = L1Tier::weight_of(key, &[]) + size;
        let value = (L1Value::from_object(object), w);
        let kept = if ticket.wrote {
            l1.keep_refused(ticket.hash, ticket.position, key, value, ttl)
        } else {
            l1.keep(ticket.hash, ticket.position, key, value, ttl)
        };
        if kept {
            l1.objects.fetch_add(1, Relaxed);
        }
        kept
    }
}
