//! The segment commands: init, drop, set, get, del, status.

use anyhow::{bail, Context, Result};
use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;
use strata_shm::{format_size, parse_size, PutOptions, Segment, SegmentOptions, Stats};

pub const NOT_FOUND: u8 = 1;
/// The size `strata init` gives a new segment unless told otherwise.
pub const DEFAULT_MEMORY: &str = "1GiB";

fn opts(dir: &Path) -> SegmentOptions {
    SegmentOptions::default().dir(dir)
}

fn open(dir: &Path, name: &str) -> Result<Segment> {
    Segment::open(name, &opts(dir)).with_context(|| format!("cannot attach to segment {name:?}"))
}

pub fn init(
    dir: &Path,
    name: &str,
    memory: Option<&str>,
    max_entries: Option<u64>,
    huge_pages: bool,
) -> Result<ExitCode> {
    let size = parse_size(memory.unwrap_or(DEFAULT_MEMORY))?;
    let mut o = opts(dir)
        .memory(size)
        .huge_pages(huge_pages)
        .on_progress(crate::progress::creation(false));
    if let Some(n) = max_entries {
        o = o.max_entries(n);
    }
    let (seg, created) = match Segment::create(name, &o) {
        Ok(s) => (s, true),
        Err(strata_shm::Error::AlreadyExists { .. }) => (Segment::open(name, &o)?, false),
        Err(e) => return Err(e.into()),
    };
    if !created {
        // A segment's size and capacity are fixed at creation: say so
        // rather than let a user think the new figures took effect.
        if let Some(kept) = seg.kept_settings(memory.map(|_| size), max_entries) {
            eprintln!(
                "strata: segment {name:?} already exists and keeps {kept}; `strata drop -n {name}` first to recreate it"
            );
        }
    }
    let l = seg.layout();
    println!(
        "{} segment {name:?} at {}: {} ({} for data), {} entries max, {} shards",
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
    );
    println!("pages: {}", page_size(&seg));
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

pub fn drop_segment(dir: &Path, name: &str) -> Result<ExitCode> {
    if Segment::unlink(name, dir)? {
        println!("dropped segment {name:?}");
        Ok(ExitCode::SUCCESS)
    } else {
        eprintln!("strata: no segment {name:?} in {}", dir.display());
        Ok(ExitCode::from(NOT_FOUND))
    }
}

/// Stores `value`, or the bytes of standard input when it is `None`.
pub fn set(
    dir: &Path,
    name: &str,
    key: &str,
    value: Option<&str>,
    ttl: Option<f64>,
) -> Result<ExitCode> {
    let mut po = PutOptions::default();
    if let Some(secs) = ttl {
        po = po.ttl(strata_shm::ttl_from_secs(secs).context("--ttl")?);
    }
    let seg = open(dir, name)?;
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

pub fn get(dir: &Path, name: &str, key: &str) -> Result<ExitCode> {
    let seg = open(dir, name)?;
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

pub fn del(dir: &Path, name: &str, key: &str) -> Result<ExitCode> {
    let seg = open(dir, name)?;
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

pub fn status(dir: &Path, name: &str, json: bool, check: bool) -> Result<ExitCode> {
    let seg = open(dir, name)?;
    let s = seg.stats()?;
    let report = if check { Some(seg.check()?) } else { None };
    if json {
        let mut v = stats_json(&s);
        v["name"] = name.into();
        v["path"] = seg.path().display().to_string().into();
        v["huge_pages"] = seg.huge_pages().into();
        if let Some(r) = &report {
            v["violations"] = r.violations.clone().into();
        }
        println!("{v}");
    } else {
        let pct = |a: u64, b: u64| {
            if b == 0 {
                0.0
            } else {
                100.0 * a as f64 / b as f64
            }
        };
        println!("segment   {name} ({})", seg.path().display());
        println!("entries   {} of {} max", s.entries, s.max_entries);
        println!(
            "memory    {} total, {} for data: {} used, {} free, {} awaiting reclaim, {} pinned by views",
            format_size(s.memory_bytes),
            format_size(s.capacity_bytes),
            format_size(s.used_bytes),
            format_size(s.free_bytes),
            format_size(s.limbo_bytes),
            format_size(s.pinned_bytes)
        );
        println!(
            "reads     {} hits, {} misses ({:.1}% hit ratio)",
            s.hits,
            s.misses,
            pct(s.hits, s.hits + s.misses)
        );
        println!(
            "writes    {} inserts, {} updates, {} deletes, {} evictions, {} expirations, {} rejected",
            s.inserts, s.updates, s.deletes, s.evictions, s.expirations, s.rejections
        );
        println!(
            "readers   {} slots attached, {} alive; epoch {}; {} shards; {} repairs",
            s.reader_slots_attached, s.reader_slots_live, s.global_epoch, s.shards, s.repairs
        );
        println!("pages     {}", page_size(&seg));
        if let Some(r) = &report {
            if r.is_clean() {
                println!("check     clean");
            } else {
                println!("check     {} violations:", r.violations.len());
                for v in &r.violations {
                    println!("  {v}");
                }
            }
        }
    }
    if report.is_some_and(|r| !r.is_clean()) {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
