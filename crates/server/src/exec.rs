//! Applying one request: the command table lookup, the checks every
//! command shares (arity, AUTH, pub/sub context, MULTI), and the glue
//! between commands and the tiered cache.

use crate::client::ClientState;
use crate::command::{self, Spec};
use crate::reply::Out;
use crate::server::Shared;
use bytes::Bytes;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;
use strata::{PutOptions, PutOutcome, WritePolicy};

/// Why a command stopped without its reply.
pub enum Fail {
    /// It must reach the upstream Redis, which blocks: run it again off
    /// the async workers. Nothing was changed before this is returned.
    Defer,
    /// An error reply, with its code (`ERR ...`, `WRONGTYPE ...`).
    Reply(String),
}

pub type CmdResult = Result<(), Fail>;

pub fn err(msg: impl std::fmt::Display) -> Fail {
    Fail::Reply(format!("ERR {msg}"))
}

pub fn syntax() -> Fail {
    Fail::Reply("ERR syntax error".into())
}

pub fn not_integer() -> Fail {
    Fail::Reply("ERR value is not an integer or out of range".into())
}

impl From<strata::Error> for Fail {
    fn from(e: strata::Error) -> Fail {
        use strata_shm::Error as S;
        match e {
            strata::Error::Upstream(u) => Fail::Reply(format!("ERR upstream Redis: {u}")),
            strata::Error::Segment(S::ValueTooLarge { len, max }) => Fail::Reply(format!(
                "ERR string exceeds maximum allowed size ({len} bytes; the cache holds values up to {max})"
            )),
            strata::Error::Segment(S::KeyTooLarge { len, max }) => Fail::Reply(format!(
                "ERR key too large ({len} bytes; at most {max})"
            )),
            other => Fail::Reply(format!("ERR {other}")),
        }
    }
}

impl From<strata_shm::Error> for Fail {
    fn from(e: strata_shm::Error) -> Fail {
        strata::Error::from(e).into()
    }
}

/// A key's value as a command sees it.
pub struct Current {
    pub value: Vec<u8>,
    /// Expiry in Unix milliseconds, if any.
    pub expires_at: Option<u64>,
}

/// One command's view of the server, its client and its output.
pub struct Exec<'a> {
    pub srv: &'a Shared,
    pub client: &'a mut ClientState,
    pub out: &'a mut Out,
    /// Whether this runs where blocking on the upstream is allowed.
    pub upstream_ok: bool,
}

impl Exec<'_> {
    pub fn seg(&self) -> &strata::Segment {
        self.srv.cache.segment()
    }

    pub fn now_ms(&self) -> u64 {
        self.seg().now_ms()
    }

    /// Whether a miss in L0 reads the upstream Redis.
    pub fn has_upstream(&self) -> bool {
        self.srv.cache.has_l2()
    }

    /// Whether writes reach the upstream Redis.
    pub fn writes_upstream(&self) -> bool {
        self.srv.cache.has_l2() && self.srv.cache.write_policy() != WritePolicy::None
    }

    /// Called before a command's first upstream call (and before any
    /// change): on an async worker, hands the command to a blocking one.
    pub fn upstream(&self) -> CmdResult {
        if self.upstream_ok {
            Ok(())
        } else {
            Err(Fail::Defer)
        }
    }

    /// Before a write: defers it if it will reach the upstream.
    pub fn write_access(&self) -> CmdResult {
        if self.writes_upstream() {
            self.upstream()
        } else {
            Ok(())
        }
    }

    /// Counts a keyspace hit or miss, as INFO's stats report them.
    pub fn count_lookup(&self, hit: bool) {
        let c = if hit {
            &self.srv.stats.keyspace_hits
        } else {
            &self.srv.stats.keyspace_misses
        };
        c.fetch_add(1, Relaxed);
    }

    /// The key's value and expiry: from L0, else from the upstream (which
    /// promotes it into L0).
    pub fn current(&mut self, key: &[u8]) -> Result<Option<Current>, Fail> {
        if let Some(g) = self.seg().peek(key)? {
            return Ok(Some(Current {
                value: g.value().to_vec(),
                expires_at: g.expires_at_ms(),
            }));
        }
        if !self.has_upstream() {
            return Ok(None);
        }
        self.upstream()?;
        let Some(v) = self.srv.cache.fetch(key)? else {
            return Ok(None);
        };
        let expires_at = match self.seg().peek(key)? {
            Some(g) => g.expires_at_ms(),
            None => None,
        };
        Ok(Some(Current {
            value: v.bytes().to_vec(),
            expires_at,
        }))
    }

    /// Whether the key exists, in L0 or upstream.
    pub fn exists(&mut self, key: &[u8]) -> Result<bool, Fail> {
        if self.seg().contains(key)? {
            return Ok(true);
        }
        if !self.has_upstream() {
            return Ok(false);
        }
        self.upstream()?;
        Ok(self.srv.cache.fetch(key)?.is_some())
    }

    /// Reads the key's value and writes what `f` returns from it (None:
    /// nothing). With no upstream the read and the write are one step
    /// under L0's shard lock, atomic against every process on the machine.
    /// With an upstream, the value is read through and written through:
    /// atomic against this server's other clients only.
    pub fn read_modify_write<F>(
        &mut self,
        key: &[u8],
        opts: PutOptions,
        f: F,
    ) -> Result<Option<PutOutcome>, Fail>
    where
        F: FnOnce(Option<&Current>) -> Result<Option<Vec<u8>>, Fail>,
    {
        if !self.has_upstream() {
            let mut failed = None;
            let r = self.seg().update(key, &opts, |cur| {
                // Under the shard lock: the commands that run here do not
                // read the expiry.
                let cur = cur.map(|v| Current {
                    value: v.to_vec(),
                    expires_at: None,
                });
                match f(cur.as_ref()) {
                    Ok(v) => v,
                    Err(e) => {
                        failed = Some(e);
                        None
                    }
                }
            })?;
            return match failed {
                Some(e) => Err(e),
                None => Ok(r),
            };
        }
        self.upstream()?;
        let _serial = self.srv.rmw_lock.lock().unwrap_or_else(|p| p.into_inner());
        let cur = self.current(key)?;
        let Some(v) = f(cur.as_ref())? else {
            return Ok(None);
        };
        let mut opts = opts;
        if opts.keep_ttl {
            opts.keep_ttl = false;
            if let Some(at) = cur.as_ref().and_then(|c| c.expires_at) {
                let left = at.saturating_sub(self.now_ms()).max(1);
                opts.ttl = Some(Duration::from_millis(left));
            }
        }
        Ok(Some(self.srv.cache.put(key, &v, &opts)?))
    }
}

/// Runs one request, writing its reply (or error) to `out`. Returns
/// Err(Defer) if the request must run again where blocking is allowed.
pub fn apply(ex: &mut Exec<'_>, args: &[Bytes]) -> CmdResult {
    let Some(name) = args.first() else {
        return Ok(());
    };
    let spec = command::lookup(name);
    if !ex.client.authenticated {
        let allowed = matches!(spec.map(|s| s.name), Some("auth" | "hello" | "quit"));
        if !allowed {
            ex.out.error("NOAUTH Authentication required.");
            return Ok(());
        }
    }
    let Some(spec) = spec else {
        if ex.client.multi.is_some() {
            ex.client.multi_dirty = true;
        }
        ex.out.error(&unknown_command(args));
        return Ok(());
    };
    if !arity_ok(spec, args.len()) {
        if ex.client.multi.is_some() {
            ex.client.multi_dirty = true;
        }
        ex.out.error(&format!(
            "ERR wrong number of arguments for '{}' command",
            spec.name
        ));
        return Ok(());
    }
    if ex.client.in_pubsub_context() && !ex.out.resp3 && !spec.pubsub_ok() {
        ex.out.error(&format!(
            "ERR Can't execute '{}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context",
            spec.name
        ));
        return Ok(());
    }
    if let Some(queue) = ex.client.multi.as_mut() {
        if !matches!(
            spec.name,
            "exec" | "discard" | "multi" | "watch" | "quit" | "reset"
        ) {
            queue.push(args.to_vec());
            ex.out.simple("QUEUED");
            return Ok(());
        }
    }
    ex.client
        .handle
        .last_cmd
        .store(spec.index(), std::sync::atomic::Ordering::Relaxed);
    let mark = ex.out.buf.len();
    match (spec.run)(ex, args) {
        Ok(()) => {
            ex.srv.stats.count(spec.index());
            Ok(())
        }
        Err(Fail::Defer) => {
            ex.out.buf.truncate(mark);
            Err(Fail::Defer)
        }
        Err(Fail::Reply(msg)) => {
            ex.out.buf.truncate(mark);
            ex.srv.stats.count(spec.index());
            ex.srv.stats.errors.fetch_add(1, Relaxed);
            ex.out.error(&msg);
            Ok(())
        }
    }
}

fn arity_ok(spec: &Spec, n: usize) -> bool {
    let a = spec.arity;
    if a >= 0 {
        n == a as usize
    } else {
        n >= (-a) as usize
    }
}

/// Redis's words for a command it does not know.
pub fn unknown_command(args: &[Bytes]) -> String {
    let name = String::from_utf8_lossy(&args[0]);
    let name: String = name.chars().take(128).collect();
    let mut rest = String::new();
    for a in &args[1..] {
        if rest.len() >= 128 {
            break;
        }
        let a = String::from_utf8_lossy(a);
        let room = 128 - rest.len();
        rest.push('\'');
        rest.extend(a.chars().take(room));
        rest.push_str("' ");
    }
    format!("ERR unknown command '{name}', with args beginning with: {rest}")
}
