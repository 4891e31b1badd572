//! Server commands: COMMAND, INFO, CONFIG, DEBUG, TIME.

use super::eq;
use crate::command::{lookup, Spec, TABLE};
use crate::config::Settings;
use crate::exec::{err, CmdResult, Exec, Fail};
use crate::reply::Out;
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;

fn command_info(out: &mut Out, s: &Spec) {
    out.array(10);
    out.bulk(s.name.as_bytes());
    out.int(s.arity as i64);
    out.set(s.flags.len());
    for f in s.flags {
        out.simple(f);
    }
    out.int(s.keys.0 as i64);
    out.int(s.keys.1 as i64);
    out.int(s.keys.2 as i64);
    out.set(1);
    out.simple(&format!("@{}", s.group));
    out.array(0);
    out.array(0);
    out.array(0);
}

fn command_docs(out: &mut Out, s: &Spec) {
    out.bulk(s.name.as_bytes());
    out.map(3);
    out.bulk(b"summary");
    out.bulk(s.summary.as_bytes());
    out.bulk(b"since");
    out.bulk(s.since.as_bytes());
    out.bulk(b"group");
    out.bulk(s.group.as_bytes());
}

pub fn command(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let Some(sub) = args.get(1) else {
        ex.out.array(TABLE.len());
        for s in TABLE {
            command_info(ex.out, s);
        }
        return Ok(());
    };
    let named = || args[2..].iter().map(|n| lookup(n));
    if eq(sub, "count") && args.len() == 2 {
        ex.out.int(TABLE.len() as i64);
    } else if eq(sub, "info") {
        if args.len() == 2 {
            ex.out.array(TABLE.len());
            TABLE.iter().for_each(|s| command_info(ex.out, s));
        } else {
            ex.out.array(args.len() - 2);
            for s in named() {
                match s {
                    Some(s) => command_info(ex.out, s),
                    None => ex.out.null_array(),
                }
            }
        }
    } else if eq(sub, "docs") {
        let found: Vec<&Spec> = if args.len() == 2 {
            TABLE.iter().collect()
        } else {
            named().flatten().collect()
        };
        ex.out.map(found.len());
        for s in found {
            command_docs(ex.out, s);
        }
    } else if eq(sub, "list") {
        ex.out.bulks(TABLE.iter().map(|s| s.name));
    } else if eq(sub, "getkeys") && args.len() >= 3 {
        let target = &args[2..];
        let Some(s) = lookup(&target[0]) else {
            return Err(err("Invalid command specified"));
        };
        let (first, last, step) = s.keys;
        if first == 0 {
            return Err(err("The command has no key arguments"));
        }
        let last = if last < 0 {
            target.len() as i32 + last
        } else {
            last
        };
        let keys: Vec<&Bytes> = (first..=last.min(target.len() as i32 - 1))
            .step_by(step.max(1) as usize)
            .map(|i| &target[i as usize])
            .collect();
        ex.out.bulks(keys.into_iter());
    } else {
        return Err(err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try COMMAND HELP.",
            String::from_utf8_lossy(sub)
        )));
    }
    Ok(())
}

pub fn info(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let sections: Vec<String> = args[1..]
        .iter()
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    let text = crate::info::render(ex.srv, &sections)?;
    ex.out.verbatim(&text);
    Ok(())
}

pub fn config(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let sub = &args[1];
    if eq(sub, "get") && args.len() >= 3 {
        let mut pairs = Vec::new();
        for name in Settings::NAMES {
            let wanted = args[2..]
                .iter()
                .any(|p| strata_shm::glob_match(&p.to_ascii_lowercase(), name.as_bytes()));
            if wanted {
                if let Some(v) = ex.srv.settings.get(name) {
                    pairs.push((name, v));
                }
            }
        }
        ex.out.map(pairs.len());
        for (k, v) in pairs {
            ex.out.bulk(k.as_bytes());
            ex.out.bulk(v.as_bytes());
        }
    } else if eq(sub, "set") && args.len() >= 4 && args.len() % 2 == 0 {
        for pair in args[2..].chunks(2) {
            let name = String::from_utf8_lossy(&pair[0]).to_ascii_lowercase();
            let value = String::from_utf8_lossy(&pair[1]);
            ex.srv.settings.set(&name, &value).map_err(|why| {
                err(format!(
                    "CONFIG SET failed (possibly related to argument '{name}') - {why}"
                ))
            })?;
        }
        ex.out.ok();
    } else if eq(sub, "resetstat") && args.len() == 2 {
        let s = &ex.srv.stats;
        for c in &s.calls {
            c.store(0, Relaxed);
        }
        for c in [
            &s.keyspace_hits,
            &s.keyspace_misses,
            &s.errors,
            &s.protocol_errors,
            &s.net_input_bytes,
            &s.net_output_bytes,
            &s.rejected_connections,
            &s.connections_received,
        ] {
            c.store(0, Relaxed);
        }
        ex.out.ok();
    } else if eq(sub, "rewrite") && args.len() == 2 {
        return Err(err("The server is running without a config file"));
    } else {
        return Err(err(format!(
            "unknown subcommand or wrong number of arguments for '{}'. Try CONFIG HELP.",
            String::from_utf8_lossy(sub)
        )));
    }
    Ok(())
}

pub fn debug(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    if eq(&args[1], "sleep") && args.len() == 3 {
        let secs: f64 = std::str::from_utf8(&args[2])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|s: &f64| s.is_finite() && *s >= 0.0)
            .ok_or_else(|| err("value is not a valid float"))?;
        if secs > 0.0 {
            // It blocks, as in Redis: run it where blocking is allowed.
            if !ex.upstream_ok {
                return Err(Fail::Defer);
            }
            std::thread::sleep(std::time::Duration::from_secs_f64(secs.min(3600.0)));
        }
        ex.out.ok();
        return Ok(());
    }
    Err(err(format!(
        "unknown subcommand or wrong number of arguments for '{}'. Try DEBUG HELP.",
        String::from_utf8_lossy(&args[1])
    )))
}

pub fn time(ex: &mut Exec<'_>, _args: &[Bytes]) -> CmdResult {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    ex.out.array(2);
    ex.out.bulk(now.as_secs().to_string().as_bytes());
    ex.out.bulk(now.subsec_micros().to_string().as_bytes());
    Ok(())
}
