//! Connection commands: PING, ECHO, HELLO, AUTH, SELECT, CLIENT, RESET,
//! QUIT.

use super::{eq, int_arg};
use crate::exec::{err, syntax, CmdResult, Exec, Fail};
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use subtle::ConstantTimeEq;

/// What HELLO and INFO say the server is compatible with.
pub const REDIS_VERSION: &str = "7.0.15";

pub fn ping(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    if args.len() > 2 {
        return Err(err("wrong number of arguments for 'ping' command"));
    }
    if ex.client.in_pubsub_context() && !ex.out.resp3 {
        ex.out.array(2);
        ex.out.bulk(b"pong");
        ex.out.bulk(args.get(1).map_or(&b""[..], |b| b));
        return Ok(());
    }
    match args.get(1) {
        Some(m) => ex.out.bulk(m),
        None => ex.out.simple("PONG"),
    }
    Ok(())
}

pub fn echo(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    ex.out.bulk(&args[1]);
    Ok(())
}

const WRONGPASS: &str = "WRONGPASS invalid username-password pair or user is disabled.";

/// Checks a password in time that does not depend on where it differs.
fn check_password(ex: &mut Exec<'_>, user: Option<&[u8]>, pass: &[u8]) -> Result<(), Fail> {
    let Some(want) = ex.srv.settings.requirepass() else {
        if user.is_none() {
            return Err(err("AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?"));
        }
        // Only the default user exists, and it needs no password.
        return if user == Some(b"default") {
            Ok(())
        } else {
            Err(Fail::Reply(WRONGPASS.into()))
        };
    };
    let user_ok = user.is_none_or(|u| u == b"default");
    let pass_ok: bool = want.as_bytes().ct_eq(pass).into();
    if user_ok && pass_ok {
        ex.client.authenticated = true;
        Ok(())
    } else {
        Err(Fail::Reply(WRONGPASS.into()))
    }
}

pub fn auth(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    match args.len() {
        2 => check_password(ex, None, &args[1])?,
        3 => check_password(ex, Some(&args[1]), &args[2])?,
        _ => return Err(syntax()),
    }
    ex.out.ok();
    Ok(())
}

pub fn hello(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let mut proto = None;
    let mut i = 1;
    if let Some(v) = args.get(1) {
        let n =
            int_arg(v).map_err(|_| err("Protocol version is not an integer or out of range"))?;
        if !(2..=3).contains(&n) {
            return Err(Fail::Reply("NOPROTO unsupported protocol version".into()));
        }
        proto = Some(n);
        i = 2;
    }
    let mut name = None;
    let mut authed = false;
    while i < args.len() {
        let more = args.len() - i - 1;
        if eq(&args[i], "auth") && more >= 2 {
            check_password(ex, Some(&args[i + 1]), &args[i + 2])?;
            authed = true;
            i += 3;
        } else if eq(&args[i], "setname") && more >= 1 {
            name = Some(args[i + 1].clone());
            i += 2;
        } else {
            return Err(err(format!(
                "Syntax error in HELLO option '{}'",
                String::from_utf8_lossy(&args[i])
            )));
        }
    }
    if !ex.client.authenticated && !authed {
        return Err(Fail::Reply("NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time".into()));
    }
    if let Some(n) = name {
        set_name(ex, n)?;
    }
    if let Some(p) = proto {
        ex.out.resp3 = p == 3;
        ex.client.handle.resp.store(p as u8, Relaxed);
    }
    let out = &mut *ex.out;
    out.map(7);
    out.bulk(b"server");
    out.bulk(b"redis");
    out.bulk(b"version");
    out.bulk(REDIS_VERSION.as_bytes());
    out.bulk(b"proto");
    out.int(if out.resp3 { 3 } else { 2 });
    out.bulk(b"id");
    out.int(ex.client.handle.id as i64);
    out.bulk(b"mode");
    out.bulk(b"standalone");
    out.bulk(b"role");
    out.bulk(b"master");
    out.bulk(b"modules");
    out.array(0);
    Ok(())
}

pub fn select(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    if int_arg(&args[1])? != 0 {
        return Err(err("SELECT is not allowed in cluster mode"));
    }
    ex.out.ok();
    Ok(())
}

fn set_name(ex: &mut Exec<'_>, name: Bytes) -> CmdResult {
    if name.iter().any(|&c| c <= b' ' || c > b'~') {
        return Err(err(
            "Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    *ex.client
        .handle
        .name
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = (!name.is_empty()).then_some(name);
    Ok(())
}

pub fn client(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let sub = String::from_utf8_lossy(&args[1]).to_ascii_lowercase();
    let n = args.len();
    match (sub.as_str(), n) {
        ("setname", 3) => {
            set_name(ex, args[2].clone())?;
            ex.out.ok();
        }
        ("getname", 2) => match ex.client.handle.name() {
            Some(name) => ex.out.bulk(&name),
            None => ex.out.null(),
        },
        ("id", 2) => ex.out.int(ex.client.handle.id as i64),
        ("info", 2) => {
            let line = ex.client.handle.info_line(ex.srv.clock.now_ms()) + "\n";
            ex.out.verbatim(&line);
        }
        ("list", _) => {
            let mut ids: Option<Vec<u64>> = None;
            let mut i = 2;
            while i < n {
                if eq(&args[i], "id") && i + 1 < n {
                    let v = args[i + 1..]
                        .iter()
                        .map(|a| int_arg(a).map(|x| x as u64))
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(|_| err("Invalid client ID"))?;
                    ids = Some(v);
                    break;
                } else if eq(&args[i], "type") && i + 1 < n {
                    i += 2;
                } else {
                    return Err(syntax());
                }
            }
            let mut text = String::new();
            for c in ex.srv.clients.all() {
                if ids.as_ref().is_none_or(|ids| ids.contains(&c.id)) {
                    text.push_str(&c.info_line(ex.srv.clock.now_ms()));
                    text.push('\n');
                }
            }
            ex.out.verbatim(&text);
        }
        ("kill", 3) => {
            // The old form: CLIENT KILL addr:port.
            let addr = String::from_utf8_lossy(&args[2]).into_owned();
            let found = ex
                .srv
                .clients
                .all()
                .into_iter()
                .find(|c| c.addr.to_string() == addr);
            match found {
                Some(c) => {
                    if c.id == ex.client.handle.id {
                        ex.client.close_after_reply = true;
                    } else {
                        c.kill();
                    }
                    ex.out.ok();
                }
                None => return Err(err("No such client")),
            }
        }
        ("kill", _) if n % 2 == 0 => {
            let (mut id, mut addr, mut laddr, mut skipme) = (None, None, None, true);
            for pair in args[2..].chunks(2) {
                let v = String::from_utf8_lossy(&pair[1]).into_owned();
                if eq(&pair[0], "id") {
                    id = Some(
                        int_arg(&pair[1]).map_err(|_| err("client-id should be greater than 0"))?
                            as u64,
                    );
                } else if eq(&pair[0], "addr") {
                    addr = Some(v);
                } else if eq(&pair[0], "laddr") {
                    laddr = Some(v);
                } else if eq(&pair[0], "skipme") {
                    skipme = match v.to_ascii_lowercase().as_str() {
                        "yes" => true,
                        "no" => false,
                        _ => return Err(syntax()),
                    };
                } else if eq(&pair[0], "type") || eq(&pair[0], "user") || eq(&pair[0], "maxage") {
                } else {
                    return Err(syntax());
                }
            }
            let mut killed = 0;
            for c in ex.srv.clients.all() {
                let me = c.id == ex.client.handle.id;
                let matches = id.is_none_or(|i| i == c.id)
                    && addr.as_ref().is_none_or(|a| *a == c.addr.to_string())
                    && laddr.as_ref().is_none_or(|a| *a == c.laddr.to_string());
                if !matches || (me && skipme) {
                    continue;
                }
                if me {
                    ex.client.close_after_reply = true;
                } else {
                    c.kill();
                }
                killed += 1;
            }
            ex.out.int(killed);
        }
        // Client libraries announce themselves; nothing to keep.
        ("setinfo", 4) | ("no-evict", 3) | ("no-touch", 3) => ex.out.ok(),
        ("reply", 3) if eq(&args[2], "on") => ex.out.ok(),
        ("help", 2) => {
            let lines = [
                "CLIENT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "GETNAME",
                "ID",
                "INFO",
                "KILL <ip:port> | KILL [ID id] [ADDR addr] [LADDR addr] [SKIPME yes|no]",
                "LIST [ID id ...]",
                "SETNAME <name>",
                "SETINFO <LIB-NAME|LIB-VER> <value>",
            ];
            ex.out.array(lines.len());
            for l in lines {
                ex.out.simple(l);
            }
        }
        _ => {
            return Err(err(format!(
                "unknown subcommand or wrong number of arguments for '{}'. Try CLIENT HELP.",
                String::from_utf8_lossy(&args[1])
            )))
        }
    }
    Ok(())
}

pub fn reset(ex: &mut Exec<'_>, _args: &[Bytes]) -> CmdResult {
    crate::cmd::pubsub::unsubscribe_all(ex, false, false);
    crate::cmd::pubsub::unsubscribe_all(ex, true, false);
    ex.client.multi = None;
    ex.client.multi_dirty = false;
    ex.client.watched.clear();
    *ex.client
        .handle
        .name
        .lock()
        .unwrap_or_else(|p| p.into_inner()) = None;
    ex.out.resp3 = false;
    ex.client.handle.resp.store(2, Relaxed);
    ex.client.authenticated = ex.srv.settings.requirepass().is_none();
    ex.out.simple("RESET");
    Ok(())
}

pub fn quit(ex: &mut Exec<'_>, _args: &[Bytes]) -> CmdResult {
    ex.client.close_after_reply = true;
    ex.out.ok();
    Ok(())
}
