//! MULTI, EXEC, DISCARD, WATCH. A transaction runs under the server's
//! exec lock, so no other client of this server comes in between; WATCH
//! compares L0's version of each key, so a change made by any process on
//! the machine (or an expiry) aborts EXEC.

use crate::command;
use crate::exec::{err, CmdResult, Exec, Fail};
use bytes::Bytes;

pub fn multi(ex: &mut Exec<'_>, _args: &[Bytes]) -> CmdResult {
    if ex.client.multi.is_some() {
        return Err(err("MULTI calls can not be nested"));
    }
    ex.client.multi = Some(Vec::new());
    ex.client.multi_dirty = false;
    ex.out.ok();
    Ok(())
}

fn version(ex: &Exec<'_>, key: &[u8]) -> Result<Option<u64>, Fail> {
    Ok(ex.seg().peek(key)?.map(|g| g.version()))
}

pub fn watch(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    if ex.client.multi.is_some() {
        return Err(err("WATCH inside MULTI is not allowed"));
    }
    for key in &args[1..] {
        let v = version(ex, key)?;
        ex.client.watched.push((key.clone(), v));
    }
    ex.out.ok();
    Ok(())
}

pub fn unwatch(ex: &mut Exec<'_>, _args: &[Bytes]) -> CmdResult {
    ex.client.watched.clear();
    ex.out.ok();
    Ok(())
}

pub fn discard(ex: &mut Exec<'_>, _args: &[Bytes]) -> CmdResult {
    if ex.client.multi.take().is_none() {
        return Err(err("DISCARD without MULTI"));
    }
    ex.client.watched.clear();
    ex.client.multi_dirty = false;
    ex.out.ok();
    Ok(())
}

pub fn exec(ex: &mut Exec<'_>, _args: &[Bytes]) -> CmdResult {
    if ex.client.multi.is_none() {
        return Err(err("EXEC without MULTI"));
    }
    if ex.client.multi_dirty {
        ex.client.multi = None;
        ex.client.multi_dirty = false;
        ex.client.watched.clear();
        return Err(Fail::Reply(
            "EXECABORT Transaction discarded because of previous errors.".into(),
        ));
    }
    // Commands that fall through to the upstream block: the whole
    // transaction runs where that is allowed.
    if ex.has_upstream() {
        ex.upstream()?;
    }
    let srv = ex.srv;
    let _alone = srv.exec_lock.write().unwrap_or_else(|p| p.into_inner());
    let watched = std::mem::take(&mut ex.client.watched);
    let queue = ex.client.multi.take().unwrap_or_default();
    for (key, v) in &watched {
        if version(ex, key)? != *v {
            ex.out.null_array();
            return Ok(());
        }
    }
    ex.out.array(queue.len());
    for args in &queue {
        let Some(spec) = command::lookup(&args[0]) else {
            ex.out.error(&crate::exec::unknown_command(args));
            continue;
        };
        let mark = ex.out.buf.len();
        match (spec.run)(ex, args) {
            Ok(()) => {}
            Err(Fail::Reply(msg)) => {
                ex.out.buf.truncate(mark);
                ex.out.error(&msg);
            }
            Err(Fail::Defer) => {
                ex.out.buf.truncate(mark);
                ex.out
                    .error("ERR the command could not reach the upstream Redis");
            }
        }
        ex.srv.stats.count(spec.index());
    }
    Ok(())
}
