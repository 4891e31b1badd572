//! Where a value's type tag lives in Redis: a companion key. The value key
//! holds exactly the value's bytes, so that any Redis client reads what was
//! stored; the dtype and shape of an array go to `strata:tag:` + key, in
//! the same hash slot: a key with a hash tag keeps it, any other key is
//! wrapped in braces, so that a cluster reads both from one node. (A key
//! with a `}` but no hash tag cannot be wrapped so; its tag then lives in
//! another slot, and the Redis tier sends it there.)

/// The key that holds `key`'s type tag.
pub fn tag_key(key: &[u8]) -> Vec<u8> {
    const PREFIX: &[u8] = b"strata:tag:";
    let mut out = Vec::with_capacity(PREFIX.len() + key.len() + 2);
    out.extend_from_slice(PREFIX);
    if has_hash_tag(key) {
        out.extend_from_slice(key);
    } else {
        out.push(b'{');
        out.extend_from_slice(key);
        out.push(b'}');
    }
    out
}

/// Whether Redis Cluster hashes `key` by a `{...}` part of it.
fn has_hash_tag(key: &[u8]) -> bool {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return false;
    };
    key[open + 1..]
        .iter()
        .position(|&b| b == b'}')
        .is_some_and(|close| close > 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::cluster_routing::Slot;

    #[test]
    fn the_tag_key_shares_the_keys_slot() {
        for key in [
            &b"emb:42"[..],
            b"{user:1}:emb",
            b"a{b}c",
            b"\xff\x00k",
            b"x{y",
        ] {
            let tk = tag_key(key);
            assert_eq!(Slot::for_key(&tk), Slot::for_key(key), "{key:?}");
            assert!(tk.starts_with(b"strata:tag:"));
        }
    }
}
