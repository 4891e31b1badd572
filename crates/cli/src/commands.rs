//! The segment commands: init, drop, set, get, del, list, keys, ttl,
//! expire, persist, status.

use anyhow::{bail, Context, Result};
use std::io::{BufWriter, IsTerminal, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use strata_shm::{format_size, PutOptions, Segment, SegmentOptions, Stats};

pub const NOT_FOUND: u8 = 1;
/// The size `strata init` gives a new segment unless told otherwise.
pub const DEFAULT_MEMORY: u64 = 1 << 30;

/// What every command needs: where segments live, and whether foreign
/// ones may be attached.
pub struct Ctx {
    pub dir: PathBuf,
    pub trust_foreign: bool,
}

impl Ctx {
    /// Options for a short-lived command: no janitor thread, since the
    /// process exits long before its first round.
    fn opts(&self) -> SegmentOptions {
        SegmentOptions::default()
            .dir(&self.dir)
            .janitor(false)
            .trust_foreign(self.trust_foreign)
    }

    pub(crate) fn open(&self, name: &str) -> Result<Segment> {
        Segment::open(name, &self.opts())
            .with_context(|| format!("cannot attach to segment {name:?}"))
    }
}

/// Whether the error is a write into a pipe whose reader has gone
/// (`strata keys | head`): not worth a message.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The error and its causes on one line, each said once: a cause whose
/// text its parent already contains is left out.
pub fn describe(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
    }
    out
}

pub fn init(
    ctx: &Ctx,
    name: &str,
    memory: Option<u64>,
    max_entries: Option<u64>,
    policy: Option<strata_shm::Policy>,
    huge_pages: bool,
) -> Result<ExitCode> {
    let size = memory.unwrap_or(DEFAULT_MEMORY);
    let mut o = ctx
        .opts()
        .memory(size)
        .huge_pages(huge_pages)
        .on_progress(crate::progress::creation(false));
    if let Some(n) = max_entries {
        o = o.max_entries(n);
    }
    if let Some(p) = policy {
        o = o.policy(p);
    }
    let (seg, created) = match Segment::create(name, &o) {
        Ok(s) => (s, true),
        Err(strata_shm::Error::AlreadyExists { .. }) => (Segment::open(name, &o)?, false),
        Err(e) => return Err(e.into()),
    };
    if !created {
        // A segment's size and capacity are fixed at creation: say so
        // rather than let a user think the new figures took effect.
        if let Some(kept) = seg.kept_settings(memory, max_entries, policy) {
            eprintln!(
                "strata: segment {name:?} already exists and keeps {kept}; `strata drop -n {name}` first to recreate it"
            );
        }
    }
    let l = seg.layout();
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} segment {name:?} at {}: {} ({} for data), {} entries max, {} shards, evicts by {}",
        if created {
            "created"
        } else {
            "attached to existing"
        },
        seg.path().display(),
        format_size(l.region_size),
        format_size(l.arena_bytes()),
        l.max_entries,
        l.shard_count,
        seg.policy(),
    )?;
    writeln!(out, "pages: {}", page_size(&seg))?;
    if created {
        writeln!(
            out,
            "it stays in {} until `strata drop -n {name}` or a reboot",
            ctx.dir.display()
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

/// The segment's page size, and with 4 KiB pages how to get larger ones.
fn page_size(seg: &Segment) -> &'static str {
    if seg.huge_pages() {
        "2 MiB (huge pages)"
    } else {
        "4 KiB; 2 MiB pages make reads faster (docs/huge-pages.md)"
    }
}

pub fn drop_segment(ctx: &Ctx, name: &str) -> Result<ExitCode> {
    if Segment::unlink(name, &ctx.dir)? {
        writeln!(std::io::stdout(), "dropped segment {name:?}")?;
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("strata: no segment {name:?} in {}", ctx.dir.display());
        Ok(ExitCode::from(NOT_FOUND))
    }
}

/// Stores `value`, or the bytes of standard input when it is `None`.
pub fn set(
    ctx: &Ctx,
    name: &str,
    key: &str,
    value: Option<&str>,
    ttl: Option<Duration>,
) -> Result<ExitCode> {
    let mut po = PutOptions::default();
    if let Some(ttl) = ttl {
        po = po.ttl(ttl);
    }
    let seg = ctx.open(name)?;
    let input;
    let bytes = match value {
        Some(v) => v.as_bytes(),
        None => {
            let stdin = std::io::stdin();
            if stdin.is_terminal() {
                // Waiting on a terminal would look like a hang.
                bail!("no VALUE given: pass one, or pipe the value into standard input");
            }
            let mut buf = Vec::new();
            stdin
                .lock()
                .read_to_end(&mut buf)
                .context("reading the value from standard input")?;
            input = buf;
            &input[..]
        }
    };
    match seg.put(key.as_bytes(), bytes, &po)? {
        strata_shm::PutOutcome::Rejected => {
            bail!("the segment is full and its admission policy kept the existing entries")
        }
        _ => Ok(ExitCode::SUCCESS),
    }
}

pub fn get(ctx: &Ctx, name: &str, key: &str) -> Result<ExitCode> {
    let seg = ctx.open(name)?;
    let value = seg.get(key.as_bytes())?.map(|v| v.to_vec());
    match value {
        Some(v) => {
            let mut out = std::io::stdout().lock();
            out.write_all(&v)?;
            // Exact bytes into a pipe or a file; a newline for a person.
            if out.is_terminal() {
                out.write_all(b"\n")?;
            }
            out.flush()?;
            Ok(ExitCode::SUCCESS)
        }
        None => Ok(ExitCode::from(NOT_FOUND)),
    }
}

pub fn del(ctx: &Ctx, name: &str, key: &str) -> Result<ExitCode> {
    let seg = ctx.open(name)?;
    Ok(if seg.delete(key.as_bytes())? {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_FOUND)
    })
}

pub fn stats_json(s: &Stats) -> serde_json::Value {
    s.fields()
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.into()))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// One line per segment: name, size and entries (or why it cannot be
/// attached).
pub fn list(ctx: &Ctx, json: bool) -> Result<ExitCode> {
    let mut out = BufWriter::new(std::io::stdout().lock());
    for name in Segment::list(&ctx.dir)? {
        let path = strata_shm::segment_path(&ctx.dir, &name);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        let seg = ctx.open(&name);
        let entries = seg.as_ref().ok().map(|s| s.len());
        if json {
            let mut v = serde_json::json!({
                "name": name,
                "path": path.display().to_string(),
                "memory_bytes": size,
                "entries": entries,
            });
            if let Err(e) = &seg {
                v["error"] = describe(e).into();
            }
            writeln!(out, "{v}")?;
        } else {
            let what = match (&seg, entries) {
                (Ok(_), Some(n)) => format!("{n} entries"),
                (Err(e), _) => format!("cannot attach: {}", e.root_cause()),
                _ => String::new(),
            };
            writeln!(out, "{name}\t{}\t{what}", format_size(size))?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// Streams the keys (those matching `pattern`), one per line.
pub fn keys(ctx: &Ctx, name: &str, pattern: Option<&str>) -> Result<ExitCode> {
    let seg = ctx.open(name)?;
    let mut out = BufWriter::new(std::io::stdout().lock());
    for key in seg.keys() {
        if pattern.is_none_or(|p| strata_shm::glob_match(p.as_bytes(), &key)) {
            out.write_all(&key)?;
            out.write_all(b"\n")?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

pub fn ttl(ctx: &Ctx, name: &str, key: &str) -> Result<ExitCode> {
    let seg = ctx.open(name)?;
    let expiry = match seg.peek(key.as_bytes())? {
        Some(g) => g.expires_at_ms(),
        None => return Ok(ExitCode::from(NOT_FOUND)),
    };
    let mut out = std::io::stdout().lock();
    match expiry {
        Some(at) => {
            let left = at.saturating_sub(seg.now_ms());
            writeln!(out, "{}.{:03}", left / 1000, left % 1000)?
        }
        None => writeln!(out, "-1")?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Sets (`Some`) or removes (`None`) a key's time to live.
pub fn expire(ctx: &Ctx, name: &str, key: &str, ttl: Option<Duration>) -> Result<ExitCode> {
    let seg = ctx.open(name)?;
    let found = match ttl {
        Some(t) => seg.expire(key.as_bytes(), t)?,
        None => seg.persist(key.as_bytes())?,
    };
    Ok(if found {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(NOT_FOUND)
    })
}

pub fn status(ctx: &Ctx, name: &str, json: bool, check: bool) -> Result<ExitCode> {
    let seg = ctx.open(name)?;
    let s = seg.stats()?;
    let report = if check { Some(seg.check()?) } else { None };
    let mut out = std::io::stdout().lock();
    if json {
        let mut v = stats_json(&s);
        v["name"] = name.into();
        v["path"] = seg.path().display().to_string().into();
        v["huge_pages"] = seg.huge_pages().into();
        if let Some(r) = &report {
            v["violations"] = r.violations.clone().into();
        }
        v["server"] = crate::server_cmd::status_json(&ctx.dir, name);
        v["trace_sample_rate"] = seg.trace_rate().into();
        v["policy"] = seg.policy().to_string().into();
        if seg.policy() == strata_shm::Policy::WTinyLfu {
            v["window_share"] = seg.window_share().into();
        }
        writeln!(out, "{v}")?;
    } else {
        let pct = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                100.0 * a as f64 / b as f64
            }
        };
        writeln!(out, "segment   {name} ({})", seg.path().display())?;
        let window = match seg.policy() {
            strata_shm::Policy::WTinyLfu => {
                format!(" (window {:.1}%)", 100.0 * seg.window_share())
            }
            _ => String::new(),
        };
        writeln!(
            out,
            "entries   {} of {} max; evicts by {}{window}",
            s.entries,
            s.max_entries,
            seg.policy()
        )?;
        writeln!(
            out,
            "memory    {} total, {} for data: {} used, {} free, {} awaiting reclaim, {} pinned by views",
            format_size(s.memory_bytes),
            format_size(s.capacity_bytes),
            format_size(s.used_bytes),
            format_size(s.free_bytes),
            format_size(s.limbo_bytes),
            format_size(s.pinned_bytes)
        )?;
        writeln!(
            out,
            "reads     {} hits, {} misses ({:.1}% hit ratio)",
            s.hits,
            s.misses,
            pct(s.hits, s.hits + s.misses)
        )?;
        writeln!(
            out,
            "writes    {} inserts, {} updates, {} deletes, {} evictions, {} expirations, {} rejected",
            s.inserts, s.updates, s.deletes, s.evictions, s.expirations, s.rejections
        )?;
        writeln!(
            out,
            "readers   {} slots attached, {} alive; epoch {}; {} shards; {} repairs",
            s.reader_slots_attached, s.reader_slots_live, s.global_epoch, s.shards, s.repairs
        )?;
        writeln!(out, "pages     {}", page_size(&seg))?;
        if let Some(rate) = seg.trace_rate() {
            writeln!(
                out,
                "trace     recording at sample rate {rate} ({} dropped so far)",
                seg.trace_dropped()
            )?;
        }
        let server = crate::server_cmd::status_json(&ctx.dir, name);
        if server.is_null() {
            writeln!(
                out,
                "server    none (`strata start -n {name}` serves it on port 6380)"
            )?;
        } else {
            writeln!(
                out,
                "server    pid {}, listening on {}, {} clients, {} ops/s, up {}s",
                server["pid"],
                server["addr"].as_str().unwrap_or("?"),
                server["clients"],
                server["ops_per_sec"],
                server["uptime_secs"]
            )?;
        }
        if let Some(r) = &report {
            if r.is_clean() {
                writeln!(out, "check     clean")?;
            } else {
                writeln!(out, "check     {} violations:", r.violations.len())?;
                for v in &r.violations {
                    writeln!(out, "  {v}")?;
                }
            }
        }
    }
    if report.is_some_and(|r| !r.is_clean()) {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

/// What `strata warm` was asked to do.
pub struct WarmArgs {
    pub keys: Vec<String>,
    pub redis: Option<String>,
    pub redis_cluster: Vec<String>,
    pub pattern: Option<String>,
    pub file: Option<PathBuf>,
    pub save_hot: Option<usize>,
}

/// Loads keys from Redis into the cache's shared memory (or saves its
/// hottest keys to a file), with a progress line on a terminal.
pub fn warm(ctx: &Ctx, name: &str, a: WarmArgs) -> Result<ExitCode> {
    let mut b = strata::Cache::builder(name)
        .segment_options(ctx.opts())
        .create(false)
        .write_policy(strata::WritePolicy::None)
        .invalidation(false);
    match (&a.redis, a.redis_cluster.is_empty()) {
        (Some(url), true) => b = b.redis(url),
        (None, false) => b = b.redis_cluster(a.redis_cluster.clone()),
        _ if a.save_hot.is_some() => {}
        _ => bail!("give --redis URL (or --redis-cluster URL...) to load from"),
    }
    let cache = b
        .build()
        .with_context(|| format!("cannot attach to segment {name:?}"))?;
    let mut out = std::io::stdout().lock();
    if let (Some(n), Some(path)) = (a.save_hot, &a.file) {
        let saved = cache.save_hot_keys(path, n)?;
        writeln!(out, "saved the {saved} hottest keys to {}", path.display())?;
        return Ok(ExitCode::SUCCESS);
    }
    let started = std::time::Instant::now();
    let bar = |done: u64, total: Option<u64>| {
        crate::progress::show(
            false,
            &match total {
                Some(t) => format!("warming: {done} of {t} keys"),
                None => format!("warming: {done} keys"),
            },
        )
    };
    let rep = match (&a.pattern, &a.file) {
        (Some(p), _) => cache.warm_pattern(p, Some(&bar)),
        (None, Some(f)) => cache.warm_file(f, Some(&bar)),
        (None, None) if !a.keys.is_empty() => cache.warm_keys(&a.keys, Some(&bar)),
        (None, None) => bail!("give KEYS, --pattern or --file"),
    };
    crate::progress::show(false, "");
    let rep = rep?;
    writeln!(
        out,
        "warmed {name:?} in {:.1} s: {} keys, {} loaded, {} already there, {} not in Redis",
        started.elapsed().as_secs_f64(),
        rep.keys,
        rep.loaded,
        rep.present,
        rep.missing
    )?;
    Ok(ExitCode::SUCCESS)
}
