//! String commands: GET, SET and its variants, counters, APPEND.

use super::{eq, int_arg};
use crate::exec::{err, not_integer, syntax, CmdResult, Current, Exec, Fail};
use crate::frame::parse_i64;
use bytes::Bytes;
use std::time::Duration;
use strata::PutOptions;

pub fn get(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let key = &args[1];
    if let Some(g) = ex.srv.cache.segment().get(key)? {
        ex.out.bulk(&g);
        drop(g);
        ex.count_lookup(true);
        return Ok(());
    }
    if ex.has_upstream() {
        ex.upstream()?;
        if let Some(v) = ex.srv.cache.fetch(key)? {
            ex.out.bulk(v.bytes());
            ex.count_lookup(true);
            return Ok(());
        }
    }
    ex.count_lookup(false);
    ex.out.null();
    Ok(())
}

/// When a write's key expires.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Expiry {
    None,
    Keep,
    /// In this many milliseconds from now (at most 0: already expired).
    In(i64),
}

/// An expiry argument in `unit` ms (1 or 1000), absolute or relative, in
/// milliseconds from now; Redis's checks and words.
pub fn expiry_arg(
    ex: &Exec<'_>,
    v: &[u8],
    unit: i64,
    absolute: bool,
    cmd: &str,
) -> Result<i64, Fail> {
    let n = int_arg(v)?;
    let invalid = || err(format!("invalid expire time in '{cmd}' command"));
    if n <= 0 {
        return Err(invalid());
    }
    let ms = n.checked_mul(unit).ok_or_else(invalid)?;
    let now = ex.now_ms() as i64;
    if absolute {
        Ok(ms - now)
    } else {
        ms.checked_add(now).ok_or_else(invalid)?;
        Ok(ms)
    }
}

fn options(e: Expiry) -> PutOptions {
    match e {
        Expiry::None => PutOptions::default(),
        Expiry::Keep => PutOptions::default().keep_ttl(),
        Expiry::In(ms) => PutOptions::default().ttl(Duration::from_millis(ms.max(1) as u64)),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Cond {
    Always,
    Absent,
    Present,
}

/// SET's whole behaviour, shared by SETNX, SETEX, PSETEX, GETSET and MSET.
fn set_value(
    ex: &mut Exec<'_>,
    key: &Bytes,
    value: &Bytes,
    expiry: Expiry,
    cond: Cond,
    get: bool,
) -> Result<(bool, Option<Vec<u8>>), Fail> {
    ex.write_access()?;
    let expired_now = matches!(expiry, Expiry::In(ms) if ms <= 0);
    if cond == Cond::Always && !get && expiry != Expiry::Keep {
        if expired_now {
            ex.srv.cache.delete(key)?;
        } else {
            ex.srv.cache.put(key, value, &options(expiry))?;
        }
        return Ok((true, None));
    }
    let mut old = None;
    let mut wrote = false;
    ex.read_modify_write(key, options(expiry), |cur: Option<&Current>| {
        if get {
            old = cur.map(|c| c.value.clone());
        }
        let holds = match cond {
            Cond::Always => true,
            Cond::Absent => cur.is_none(),
            Cond::Present => cur.is_some(),
        };
        wrote = holds;
        Ok(holds.then(|| value.to_vec()))
    })?;
    if wrote && expired_now {
        ex.srv.cache.delete(key)?;
    }
    Ok((wrote, old))
}

/// SET's and GETEX's expiry options: (unit in ms, absolute) of EX, PX,
/// EXAT and PXAT.
fn expiry_option(a: &[u8]) -> Option<(i64, bool)> {
    [
        ("ex", 1000, false),
        ("px", 1, false),
        ("exat", 1000, true),
        ("pxat", 1, true),
    ]
    .into_iter()
    .find(|(w, _, _)| eq(a, w))
    .map(|(_, unit, abs)| (unit, abs))
}

pub fn set(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let (mut cond, mut get, mut keep) = (Cond::Always, false, false);
    let mut exp: Option<(usize, i64, bool)> = None; // (arg index, unit, absolute)
    let mut i = 3;
    while i < args.len() {
        let a = &args[i];
        let has_next = i + 1 < args.len();
        let timed = exp.is_some();
        let kind = expiry_option(a);
        if eq(a, "nx") && cond != Cond::Present {
            cond = Cond::Absent;
        } else if eq(a, "xx") && cond != Cond::Absent {
            cond = Cond::Present;
        } else if eq(a, "get") {
            get = true;
        } else if eq(a, "keepttl") && !timed {
            keep = true;
        } else if let (Some((unit, abs)), true, false) = (kind, has_next, keep) {
            if let Some((_, u, a)) = exp {
                if (u, a) != (unit, abs) {
                    return Err(syntax());
                }
            }
            exp = Some((i + 1, unit, abs));
            i += 1;
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    let expiry = match exp {
        Some((at, unit, abs)) => Expiry::In(expiry_arg(ex, &args[at], unit, abs, "set")?),
        None if keep => Expiry::Keep,
        None => Expiry::None,
    };
    let (wrote, old) = set_value(ex, &args[1], &args[2], expiry, cond, get)?;
    if get {
        match old {
            Some(v) => ex.out.bulk(&v),
            None => ex.out.null(),
        }
    } else if wrote {
        ex.out.ok();
    } else {
        ex.out.null();
    }
    Ok(())
}

pub fn setnx(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let (wrote, _) = set_value(ex, &args[1], &args[2], Expiry::None, Cond::Absent, false)?;
    ex.out.int(wrote as i64);
    Ok(())
}

fn set_with_expiry(ex: &mut Exec<'_>, args: &[Bytes], unit: i64, cmd: &str) -> CmdResult {
    let n = int_arg(&args[2])?;
    if n <= 0 {
        return Err(err(format!("invalid expire time in '{cmd}' command")));
    }
    let ms = n
        .checked_mul(unit)
        .filter(|ms| ms.checked_add(ex.now_ms() as i64).is_some())
        .ok_or_else(|| err(format!("invalid expire time in '{cmd}' command")))?;
    set_value(ex, &args[1], &args[3], Expiry::In(ms), Cond::Always, false)?;
    ex.out.ok();
    Ok(())
}

pub fn setex(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    set_with_expiry(ex, args, 1000, "setex")
}

pub fn psetex(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    set_with_expiry(ex, args, 1, "psetex")
}

pub fn getset(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let (_, old) = set_value(ex, &args[1], &args[2], Expiry::None, Cond::Always, true)?;
    match old {
        Some(v) => ex.out.bulk(&v),
        None => ex.out.null(),
    }
    Ok(())
}

pub fn getex(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    // The options' syntax first; their numbers only once the key is found,
    // as Redis checks them.
    let mut persist = false;
    let mut timed: Option<(&Bytes, i64, bool)> = None;
    let mut i = 2;
    while i < args.len() {
        let a = &args[i];
        let kind = expiry_option(a);
        let set = persist || timed.is_some();
        if eq(a, "persist") && !set {
            persist = true;
        } else if let (Some((unit, abs)), true, false) = (kind, i + 1 < args.len(), set) {
            timed = Some((&args[i + 1], unit, abs));
            i += 1;
        } else {
            return Err(syntax());
        }
        i += 1;
    }
    if persist || timed.is_some() {
        ex.write_access()?;
    }
    let key = &args[1];
    let Some(cur) = ex.current(key)? else {
        ex.count_lookup(false);
        ex.out.null();
        return Ok(());
    };
    ex.count_lookup(true);
    if let Some((v, unit, abs)) = timed {
        let n = int_arg(v)?;
        let invalid = || err("invalid expire time in 'getex' command");
        if n <= 0 {
            return Err(invalid());
        }
        let ms = n.checked_mul(unit).ok_or_else(invalid)?;
        let now = ex.now_ms() as i64;
        let ms = if abs {
            ms - now
        } else {
            ms.checked_add(now).ok_or_else(invalid)?;
            ms
        };
        if ms <= 0 {
            ex.srv.cache.delete(key)?;
        } else {
            ex.srv
                .cache
                .expire(key, Some(Duration::from_millis(ms as u64)))?;
        }
    } else if persist {
        ex.srv.cache.expire(key, None)?;
    }
    ex.out.bulk(&cur.value);
    Ok(())
}

pub fn getdel(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    ex.write_access()?;
    match ex.current(&args[1])? {
        Some(cur) => {
            ex.srv.cache.delete(&args[1])?;
            ex.count_lookup(true);
            ex.out.bulk(&cur.value);
        }
        None => {
            ex.count_lookup(false);
            ex.out.null();
        }
    }
    Ok(())
}

pub fn mget(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let keys = &args[1..];
    if !ex.has_upstream() || !ex.upstream_ok {
        ex.out.array(keys.len());
        for key in keys {
            match ex.srv.cache.segment().get(key)? {
                Some(g) => {
                    ex.out.bulk(&g);
                    drop(g);
                    ex.count_lookup(true);
                }
                None if ex.has_upstream() => return Err(Fail::Defer),
                None => {
                    ex.count_lookup(false);
                    ex.out.null();
                }
            }
        }
        return Ok(());
    }
    // Some key missed L0: copy the hits, then one batched upstream read
    // for the misses.
    let mut values: Vec<Option<Vec<u8>>> = Vec::with_capacity(keys.len());
    let mut missing = Vec::new();
    for (i, key) in keys.iter().enumerate() {
        match ex.srv.cache.segment().get(key)? {
            Some(g) => values.push(Some(g.to_vec())),
            None => {
                values.push(None);
                missing.push(i);
            }
        }
    }
    let wanted: Vec<&[u8]> = missing.iter().map(|&i| &keys[i][..]).collect();
    let fetched = ex.srv.cache.fetch_many_copied(&wanted)?;
    for (i, v) in missing.into_iter().zip(fetched) {
        values[i] = v.map(|v| v.bytes().to_vec());
    }
    ex.out.array(values.len());
    for v in values {
        ex.count_lookup(v.is_some());
        match v {
            Some(v) => ex.out.bulk(&v),
            None => ex.out.null(),
        }
    }
    Ok(())
}

/// The key-value pairs of MSET and MSETNX, with Redis's arity error.
fn pairs<'a>(args: &'a [Bytes], cmd: &str) -> Result<std::slice::Chunks<'a, Bytes>, Fail> {
    if args.len() % 2 == 0 {
        return Err(err(format!(
            "wrong number of arguments for '{cmd}' command"
        )));
    }
    Ok(args[1..].chunks(2))
}

pub fn mset(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let pairs = pairs(args, "mset")?;
    ex.write_access()?;
    for pair in pairs {
        set_value(ex, &pair[0], &pair[1], Expiry::None, Cond::Always, false)?;
    }
    ex.out.ok();
    Ok(())
}

/// Sets all the keys if none exists. The check and the writes are
/// separate steps: a client writing one of the keys in between is not
/// seen (docs/server.md says so).
pub fn msetnx(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let all = pairs(args, "msetnx")?;
    ex.write_access()?;
    for pair in all.clone() {
        if ex.exists(&pair[0])? {
            ex.out.int(0);
            return Ok(());
        }
    }
    for pair in all {
        set_value(ex, &pair[0], &pair[1], Expiry::None, Cond::Always, false)?;
    }
    ex.out.int(1);
    Ok(())
}

pub fn append(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    ex.write_access()?;
    let mut len = 0;
    ex.read_modify_write(&args[1], PutOptions::default().keep_ttl(), |cur| {
        let mut v = cur.map(|c| c.value.clone()).unwrap_or_default();
        v.extend_from_slice(&args[2]);
        len = v.len();
        Ok(Some(v))
    })?;
    ex.out.int(len as i64);
    Ok(())
}

pub fn strlen(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    if let Some(g) = ex.srv.cache.segment().peek(&args[1])? {
        ex.out.int(g.len() as i64);
        return Ok(());
    }
    let n = ex.current(&args[1])?.map_or(0, |c| c.value.len());
    ex.out.int(n as i64);
    Ok(())
}

fn incr_by(ex: &mut Exec<'_>, key: &Bytes, by: i64) -> CmdResult {
    ex.write_access()?;
    let mut result = 0;
    ex.read_modify_write(key, PutOptions::default().keep_ttl(), |cur| {
        let n = match cur {
            Some(c) => parse_i64(&c.value).ok_or_else(not_integer)?,
            None => 0,
        };
        result = n
            .checked_add(by)
            .ok_or_else(|| err("increment or decrement would overflow"))?;
        Ok(Some(itoa::Buffer::new().format(result).as_bytes().to_vec()))
    })?;
    ex.out.int(result);
    Ok(())
}

pub fn incr(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    incr_by(ex, &args[1], 1)
}

pub fn decr(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    incr_by(ex, &args[1], -1)
}

pub fn incrby(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let by = int_arg(&args[2])?;
    incr_by(ex, &args[1], by)
}

pub fn decrby(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let by = int_arg(&args[2])?;
    if by == i64::MIN {
        return Err(err("decrement would overflow"));
    }
    incr_by(ex, &args[1], -by)
}

/// A float as Redis reads one (C's strtold): decimal or hexadecimal
/// (`0x1p3`), `inf` allowed, no NaN, no spaces around it.
fn parse_float(b: &[u8]) -> Option<f64> {
    let s = std::str::from_utf8(b).ok()?;
    if s.is_empty()
        || s.starts_with(|c: char| c.is_whitespace())
        || s.ends_with(|c: char| c.is_whitespace())
    {
        return None;
    }
    let (neg, body) = match s.as_bytes()[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let v = if body.len() > 2 && body[..2].eq_ignore_ascii_case("0x") {
        parse_hex_float(&body[2..])?
    } else {
        if body.starts_with(['+', '-']) {
            return None;
        }
        let v: f64 = body.parse().ok()?;
        if v.is_nan() {
            return None;
        }
        v
    };
    Some(if neg { -v } else { v })
}

/// The digits of a hexadecimal float after `0x`: `1A.8p-3`.
fn parse_hex_float(s: &str) -> Option<f64> {
    let (mant, exp) = match s.find(['p', 'P']) {
        Some(i) => (&s[..i], s[i + 1..].parse::<i32>().ok()?),
        None => (s, 0),
    };
    let (int, frac) = mant.split_once('.').unwrap_or((mant, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let mut v = 0f64;
    for c in int.chars() {
        v = v * 16.0 + c.to_digit(16)? as f64;
    }
    let mut scale = 1.0 / 16.0;
    for c in frac.chars() {
        v += c.to_digit(16)? as f64 * scale;
        scale /= 16.0;
    }
    Some(v * 2f64.powi(exp))
}

pub fn incrbyfloat(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let by = parse_float(&args[2]).ok_or_else(|| err("value is not a valid float"))?;
    ex.write_access()?;
    let mut text = String::new();
    ex.read_modify_write(&args[1], PutOptions::default().keep_ttl(), |cur| {
        let n = match cur {
            Some(c) => parse_float(&c.value).ok_or_else(|| err("value is not a valid float"))?,
            None => 0.0,
        };
        let r = n + by;
        if !r.is_finite() {
            return Err(err("increment would produce NaN or Infinity"));
        }
        text = crate::reply::format_double(r);
        Ok(Some(text.clone().into_bytes()))
    })?;
    ex.out.bulk(text.as_bytes());
    Ok(())
}
