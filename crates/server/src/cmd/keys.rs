//! Key commands: DEL, EXISTS, expiries, TYPE, SCAN, KEYS, DBSIZE, FLUSHDB.
//! Listings (SCAN, KEYS, DBSIZE, RANDOMKEY) and FLUSHDB cover this
//! machine's L0, not the upstream Redis.

use super::{eq, int_arg, is_internal};
use crate::exec::{err, syntax, CmdResult, Exec, Fail};
use bytes::Bytes;
use std::time::Duration;

pub fn del(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    ex.write_access()?;
    let mut n = 0;
    for key in &args[1..] {
        n += ex.srv.cache.delete(key)? as i64;
    }
    ex.out.int(n);
    Ok(())
}

pub fn exists(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let mut n = 0;
    for key in &args[1..] {
        n += ex.exists(key)? as i64;
    }
    ex.out.int(n);
    Ok(())
}

/// The key's expiry: None if absent, Some(None) if it has none.
fn expiry_of(ex: &mut Exec<'_>, key: &[u8]) -> Result<Option<Option<u64>>, Fail> {
    if let Some(g) = ex.seg().peek(key)? {
        return Ok(Some(g.expires_at_ms()));
    }
    Ok(ex.current(key)?.map(|c| c.expires_at))
}

fn expire_generic(
    ex: &mut Exec<'_>,
    args: &[Bytes],
    unit: i64,
    absolute: bool,
    cmd: &str,
) -> CmdResult {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for a in &args[3..] {
        if eq(a, "nx") {
            nx = true;
        } else if eq(a, "xx") {
            xx = true;
        } else if eq(a, "gt") {
            gt = true;
        } else if eq(a, "lt") {
            lt = true;
        } else {
            return Err(err(format!(
                "Unsupported option {}",
                String::from_utf8_lossy(a)
            )));
        }
    }
    if nx && (xx || gt || lt) {
        return Err(err(
            "NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if gt && lt {
        return Err(err("GT and LT options at the same time are not compatible"));
    }
    let n = int_arg(&args[2])?;
    let invalid = || err(format!("invalid expire time in '{cmd}' command"));
    let ms = n.checked_mul(unit).ok_or_else(invalid)?;
    let now = ex.now_ms() as i64;
    let when = if absolute {
        ms
    } else {
        ms.checked_add(now).ok_or_else(invalid)?
    };
    if when > strata_shm::MAX_TTL.as_millis() as i64 {
        return Err(invalid());
    }
    ex.write_access()?;
    let Some(current) = expiry_of(ex, &args[1])? else {
        ex.out.int(0);
        return Ok(());
    };
    let refused = match current {
        Some(at) => nx || (gt && when <= at as i64) || (lt && when >= at as i64),
        None => xx || gt,
    };
    if refused {
        ex.out.int(0);
        return Ok(());
    }
    if when <= now {
        ex.srv.cache.delete(&args[1])?;
    } else {
        let ttl = Duration::from_millis((when - now) as u64);
        ex.srv.cache.expire(&args[1], Some(ttl))?;
    }
    ex.out.int(1);
    Ok(())
}

pub fn expire(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ex, args, 1000, false, "expire")
}

pub fn pexpire(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ex, args, 1, false, "pexpire")
}

pub fn expireat(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ex, args, 1000, true, "expireat")
}

pub fn pexpireat(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    expire_generic(ex, args, 1, true, "pexpireat")
}

/// TTL, PTTL, EXPIRETIME, PEXPIRETIME: -2 absent, -1 no expiry.
fn ttl_generic(ex: &mut Exec<'_>, key: &[u8], ms: bool, absolute: bool) -> CmdResult {
    let reply = match expiry_of(ex, key)? {
        None => -2,
        Some(None) => -1,
        Some(Some(at)) if absolute => {
            if ms {
                at as i64
            } else {
                at as i64 / 1000
            }
        }
        Some(Some(at)) => {
            let left = (at as i64 - ex.now_ms() as i64).max(0);
            if ms {
                left
            } else {
                (left + 500) / 1000
            }
        }
    };
    ex.out.int(reply);
    Ok(())
}

pub fn ttl(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    ttl_generic(ex, &args[1], false, false)
}

pub fn pttl(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    ttl_generic(ex, &args[1], true, false)
}

pub fn expiretime(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    ttl_generic(ex, &args[1], false, true)
}

pub fn pexpiretime(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    ttl_generic(ex, &args[1], true, true)
}

pub fn persist(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    ex.write_access()?;
    let had_ttl = matches!(expiry_of(ex, &args[1])?, Some(Some(_)));
    if had_ttl {
        ex.srv.cache.expire(&args[1], None)?;
    }
    ex.out.int(had_ttl as i64);
    Ok(())
}

pub fn type_(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let t = if ex.exists(&args[1])? {
        "string"
    } else {
        "none"
    };
    ex.out.simple(t);
    Ok(())
}

pub fn scan(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let cursor = std::str::from_utf8(&args[1])
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .ok_or_else(|| err("invalid cursor"))?;
    let (mut pattern, mut count, mut only_type) = (None, 10i64, None);
    let mut i = 2;
    while i < args.len() {
        if i + 1 >= args.len() {
            return Err(syntax());
        }
        let v = &args[i + 1];
        if eq(&args[i], "match") {
            pattern = Some(v.clone());
        } else if eq(&args[i], "count") {
            count = int_arg(v)?;
            if count < 1 {
                return Err(syntax());
            }
        } else if eq(&args[i], "type") {
            only_type = Some(v.clone());
        } else {
            return Err(syntax());
        }
        i += 2;
    }
    let mut keys = Vec::new();
    // A bucket holds a few keys: COUNT is a hint of how many to return.
    let buckets = (count as u64).div_ceil(4).max(1);
    let next = ex.seg().scan_buckets(cursor, buckets, &mut keys);
    keys.retain(|k| {
        !is_internal(k)
            && pattern
                .as_ref()
                .is_none_or(|p| strata_shm::glob_match(p, k))
            && only_type.as_ref().is_none_or(|t| eq(t, "string"))
    });
    ex.out.array(2);
    ex.out.bulk(itoa::Buffer::new().format(next).as_bytes());
    ex.out.bulks(keys.iter());
    Ok(())
}

pub fn keys(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let pattern = &args[1];
    let all = pattern.as_ref() == b"*";
    let keys: Vec<Vec<u8>> = ex
        .seg()
        .keys()
        .filter(|k| !is_internal(k) && (all || strata_shm::glob_match(pattern, k)))
        .collect();
    ex.out.bulks(keys.iter());
    Ok(())
}

/// The entries in L0's index: O(1); expired keys count until the janitor
/// sweeps them, as Redis counts its own until they are reclaimed.
pub fn dbsize(ex: &mut Exec<'_>, _args: &[Bytes]) -> CmdResult {
    let n = ex.seg().stats()?.entries;
    ex.out.int(n as i64);
    Ok(())
}

pub fn flushdb(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    match args.get(1) {
        None => {}
        Some(a) if args.len() == 2 && (eq(a, "async") || eq(a, "sync")) => {}
        Some(_) => return Err(syntax()),
    }
    let seg = ex.seg().clone();
    for key in seg.keys().filter(|k| !is_internal(k)) {
        seg.delete(&key)?;
    }
    ex.out.ok();
    Ok(())
}

pub fn randomkey(ex: &mut Exec<'_>, _args: &[Bytes]) -> CmdResult {
    let seg = ex.seg().clone();
    let total = seg.scan_len();
    let start = (ex.now_ms().wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7) % total.max(1);
    let mut cursor = start;
    let mut wrapped = false;
    loop {
        let mut keys = Vec::new();
        let next = seg.scan_buckets(cursor, 64, &mut keys);
        if let Some(k) = keys.into_iter().find(|k| !is_internal(k)) {
            ex.out.bulk(&k);
            return Ok(());
        }
        cursor = next;
        if cursor == 0 {
            if wrapped {
                break;
            }
            wrapped = true;
        }
        if wrapped && cursor >= start {
            break;
        }
    }
    ex.out.null();
    Ok(())
}
