//! Pub/sub commands. Confirmations and messages are push frames in RESP3,
//! arrays in RESP2.

use crate::exec::{err, CmdResult, Exec};
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;

fn confirm(ex: &mut Exec<'_>, kind: &[u8], channel: Option<&[u8]>) {
    let n = ex.client.subscriptions();
    ex.out.push(3);
    ex.out.bulk(kind);
    match channel {
        Some(c) => ex.out.bulk(c),
        None => ex.out.null(),
    }
    ex.out.int(n as i64);
}

fn sync_counts(ex: &Exec<'_>) {
    let h = &ex.client.handle;
    h.subs.store(ex.client.channels.len(), Relaxed);
    h.psubs.store(ex.client.patterns.len(), Relaxed);
}

fn subscribe_generic(ex: &mut Exec<'_>, args: &[Bytes], pattern: bool) -> CmdResult {
    if ex.client.multi.is_some() {
        return Err(err("Command not allowed inside a transaction"));
    }
    for ch in &args[1..] {
        let set = if pattern {
            &mut ex.client.patterns
        } else {
            &mut ex.client.channels
        };
        if set.insert(ch.clone()) {
            ex.srv.broker.subscribe(ch, &ex.client.subscriber, pattern);
        }
        sync_counts(ex);
        confirm(
            ex,
            if pattern { b"psubscribe" } else { b"subscribe" },
            Some(ch),
        );
    }
    Ok(())
}

pub fn subscribe(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    subscribe_generic(ex, args, false)
}

pub fn psubscribe(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    subscribe_generic(ex, args, true)
}

/// Drops every subscription of one kind, confirming each if `reply`.
pub fn unsubscribe_all(ex: &mut Exec<'_>, pattern: bool, reply: bool) {
    let all: Vec<Bytes> = if pattern {
        ex.client.patterns.drain().collect()
    } else {
        ex.client.channels.drain().collect()
    };
    let kind: &[u8] = if pattern {
        b"punsubscribe"
    } else {
        b"unsubscribe"
    };
    if all.is_empty() && reply {
        confirm(ex, kind, None);
    }
    for ch in all {
        ex.srv.broker.unsubscribe(&ch, ex.client.handle.id, pattern);
        sync_counts(ex);
        if reply {
            // Counted after each removal, as Redis counts.
            let n = ex.client.subscriptions();
            ex.out.push(3);
            ex.out.bulk(kind);
            ex.out.bulk(&ch);
            ex.out.int(n as i64);
        }
    }
    sync_counts(ex);
}

fn unsubscribe_generic(ex: &mut Exec<'_>, args: &[Bytes], pattern: bool) -> CmdResult {
    if args.len() == 1 {
        unsubscribe_all(ex, pattern, true);
        return Ok(());
    }
    let kind: &[u8] = if pattern {
        b"punsubscribe"
    } else {
        b"unsubscribe"
    };
    for ch in &args[1..] {
        let removed = if pattern {
            ex.client.patterns.remove(ch)
        } else {
            ex.client.channels.remove(ch)
        };
        if removed {
            ex.srv.broker.unsubscribe(ch, ex.client.handle.id, pattern);
        }
        sync_counts(ex);
        confirm(ex, kind, Some(ch));
    }
    Ok(())
}

pub fn unsubscribe(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    unsubscribe_generic(ex, args, false)
}

pub fn punsubscribe(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    unsubscribe_generic(ex, args, true)
}

pub fn publish(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let limit = ex.srv.settings.pubsub_output_buffer_limit.load(Relaxed) as usize;
    let n = ex.srv.broker.publish(&args[1], &args[2], limit);
    ex.out.int(n as i64);
    Ok(())
}

pub fn pubsub(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    match (sub.as_str(), args.len()) {
        ("channels", 2 | 3) => {
            let chans = ex.srv.broker.channels(args.get(2).map(|p| &p[..]));
            ex.out.bulks(chans.iter());
        }
        ("numsub", _) => {
            ex.out.array((args.len() - 2) * 2);
            for ch in &args[2..] {
                ex.out.bulk(ch);
                ex.out.int(ex.srv.broker.numsub(ch) as i64);
            }
        }
        ("numpat", 2) => ex.out.int(ex.srv.broker.numpat() as i64),
        _ => {
            return Err(err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try PUBSUB HELP.",
                String::from_utf8_lossy(&args[1])
            )))
        }
    }
    Ok(())
}
