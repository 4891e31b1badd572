//! `strata simulate`: sizes a cache from a trace. Replays it through the
//! real policies (a real L0 segment, the L1 tier, the policies on their
//! own) at a list of sizes, draws LRU's miss-ratio curve for every size
//! at once, and recommends the size that reaches a target hit ratio.

mod mrc;
mod plot;
mod replay;
pub mod trace;

use crate::progress;
use anyhow::{bail, Context, Result};
use replay::{Outcome, Size};
use serde_json::json;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;
use strata_tiers::policy::PolicyKind;
use trace::{Format, Trace};

/// Requests up to which the LRU curve is exact by default; past it, it
/// is sampled (SHARDS) at a rate that keeps about `SAMPLED_REQUESTS`, and
/// at least 1%: the error grows as the rate falls (docs/sizing.md).
const EXACT_UP_TO: usize = 20_000_000;
const SAMPLED_REQUESTS: f64 = 4e6;
const MIN_AUTO_RATE: f64 = 0.01;

#[derive(clap::Args)]
pub struct SimulateArgs {
    /// The trace: a file, or - for stdin. Names ending .zst, .xz or .gz
    /// are read through zstd, xz or gzip.
    pub trace: PathBuf,
    /// The trace's format; by default from its name (.lis, .csv, .u64,
    /// .oracleGeneral, .txt, .trace) or a strata trace's magic.
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    /// Policies to replay, comma-separated: l0 (a real L0 segment, its
    /// default policy), l0:POLICY (a real L0 segment with lru, fifo, lfu,
    /// s3fifo, wtinylfu or none), l1 (the L1 tier, its default), lru,
    /// fifo, lfu, s3fifo, wtinylfu, none (L1's policies alone), and opt
    /// (Belady's optimum, by entries).
    /// The first one is the one the recommendation is for.
    #[arg(long, short = 'p', value_delimiter = ',', default_value = "l0,l1")]
    pub policy: Vec<String>,
    /// Sizes, comma-separated: entries (10000), a share of the trace's
    /// distinct keys (1%), or bytes (64MiB; values then weigh their
    /// size). Default: 0.1%, 0.3%, 1%, 3%, 10% and 30%.
    #[arg(long, short = 's', value_delimiter = ',')]
    pub sizes: Vec<String>,
    /// The hit ratio the recommendation aims at, as a fraction.
    #[arg(long, default_value_t = 0.9)]
    pub target_hit_ratio: f64,
    /// The share of keys LRU's curve is computed from: 1 for exact,
    /// less for SHARDS sampling; `auto` is exact up to 20M requests and
    /// past them keeps about 4M requests' worth (at least 1% of keys).
    #[arg(long, default_value = "auto")]
    pub sample_rate: String,
    /// Leave out the recommendation (it replays the first policy a few
    /// more times).
    #[arg(long)]
    pub no_recommendation: bool,
    /// Draw the miss-ratio curves into this SVG file.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// Print one JSON object (results, curve, recommendation).
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print the results as CSV.
    #[arg(long)]
    pub csv: bool,
    /// Read at most this many requests (0: all).
    #[arg(long, default_value_t = 0)]
    pub max_requests: usize,
    /// No progress line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sim {
    /// A real L0 segment with this policy (None: L0's default).
    L0(Option<strata_shm::Policy>),
    L1,
    Opt,
    Policy(PolicyKind),
}

impl Sim {
    fn name(self) -> String {
        match self {
            Sim::L0(None) => "l0".into(),
            Sim::L0(Some(p)) => format!("l0:{p}"),
            Sim::L1 => "l1".into(),
            Sim::Opt => "opt".into(),
            Sim::Policy(k) => k.name().into(),
        }
    }
}

fn parse_policy(s: &str) -> Result<Sim> {
    let t = s.trim().to_ascii_lowercase();
    if let Some(p) = t.strip_prefix("l0:") {
        let p = p
            .parse()
            .map_err(|e: String| anyhow::anyhow!("{s:?}: {e}"))?;
        return Ok(Sim::L0(Some(p)));
    }
    Ok(match t.as_str() {
        "l0" => Sim::L0(None),
        "l1" => Sim::L1,
        "opt" | "belady" => Sim::Opt,
        other => Sim::Policy(other.parse().map_err(|_| {
            anyhow::anyhow!("unknown policy {s:?}: expected l0, l0:POLICY, l1, lru, fifo, lfu, s3fifo, wtinylfu, none or opt")
        })?),
    })
}

/// A size as written, resolved against the trace's distinct keys.
#[derive(Clone, Debug)]
struct SizeSpec {
    label: String,
    size: Size,
}

fn parse_size(s: &str, unique: u64) -> Result<SizeSpec> {
    let t = s.trim();
    let size = if let Some(p) = t.strip_suffix('%') {
        let pct: f64 = p
            .trim()
            .parse()
            .ok()
            .filter(|v: &f64| *v > 0.0 && v.is_finite())
            .with_context(|| {
                format!("size {s:?}: the share must be a positive number of percent")
            })?;
        Size::Entries(((unique as f64) * pct / 100.0).round().max(1.0) as u64)
    } else if t.bytes().all(|b| b.is_ascii_digit() || b == b'_') && !t.is_empty() {
        let n: u64 = t
            .replace('_', "")
            .parse()
            .with_context(|| format!("size {s:?} is too large"))?;
        if n == 0 {
            bail!("size {s:?}: a cache needs room for at least one entry");
        }
        Size::Entries(n)
    } else {
        let n = strata_shm::parse_size(t).map_err(|e| anyhow::anyhow!("size {s:?}: {e}"))?;
        if n == 0 {
            bail!("size {s:?}: a cache needs at least one byte");
        }
        Size::Bytes(n)
    };
    Ok(SizeSpec {
        label: t.to_string(),
        size,
    })
}

fn describe(size: Size) -> String {
    match size {
        Size::Entries(n) => format!("{n} entries"),
        Size::Bytes(n) => strata_shm::format_size(n),
    }
}

/// One row of the results.
struct Row {
    sim: Sim,
    spec: SizeSpec,
    out: Outcome,
    secs: f64,
}

struct Runner<'a> {
    t: &'a Trace,
    dir: &'a Path,
    quiet: bool,
}

impl Runner<'_> {
    /// Scales a size for a sampled recording: a cache of C for all the
    /// traffic behaves as one of C × rate for the sample.
    fn scaled(&self, size: Size) -> Size {
        let r = self.t.sample_rate;
        let f = |n: u64| ((n as f64 * r).round() as u64).max(1);
        match size {
            Size::Entries(n) => Size::Entries(f(n)),
            Size::Bytes(n) => Size::Bytes(f(n)),
        }
    }

    fn run(&self, sim: Sim, size: Size) -> Result<(Outcome, f64)> {
        let n = self.t.len();
        let label = format!("replaying {} at {}", sim.name(), describe(size));
        let quiet = self.quiet;
        let mut tick = |i: usize| {
            progress::show(
                quiet,
                &format!(
                    "{label}: {:.0}% of {n} requests",
                    100.0 * i as f64 / n as f64
                ),
            )
        };
        let start = Instant::now();
        let scaled = self.scaled(size);
        let mut out = match sim {
            Sim::L0(p) => replay::l0(self.t, scaled, p, self.dir, &mut tick)?,
            Sim::L1 => replay::l1(self.t, scaled, &mut tick),
            Sim::Policy(k) => replay::policy(k, self.t, scaled, &mut tick),
            Sim::Opt => {
                tick(0);
                let hits = mrc::opt_hits(&self.t.keys, scaled.value() as usize);
                Outcome {
                    hits,
                    requests: n as u64,
                    bytes: n as u64,
                    byte_hits: hits,
                    held: None,
                }
            }
        };
        progress::show(quiet, "");
        if let Some(h) = out.held.as_mut() {
            *h = (*h as f64 / self.t.sample_rate).round() as u64;
        }
        Ok((out, start.elapsed().as_secs_f64()))
    }
}

pub fn run(dir: &Path, a: &SimulateArgs) -> Result<()> {
    if !(a.target_hit_ratio > 0.0 && a.target_hit_ratio < 1.0) {
        bail!(
            "--target-hit-ratio must be a fraction between 0 and 1, not {}",
            a.target_hit_ratio
        );
    }
    let sims = a
        .policy
        .iter()
        .map(|p| parse_policy(p))
        .collect::<Result<Vec<_>>>()?;
    if sims.is_empty() {
        bail!("--policy names no policy");
    }
    progress::show(a.quiet, &format!("reading {}", a.trace.display()));
    let started = Instant::now();
    let t = trace::read(&a.trace, a.format, a.max_requests)?;
    progress::show(a.quiet, "");
    let unique_sampled = t.keys.iter().collect::<HashSet<_>>().len() as u64;
    let unique = (unique_sampled as f64 / t.sample_rate).round() as u64;
    let distinct_sizes: u64 = {
        let mut seen = HashSet::new();
        t.keys
            .iter()
            .zip(&t.sizes)
            .filter(|(k, _)| seen.insert(**k))
            .map(|(_, &s)| u64::from(s))
            .sum()
    };
    let mean_size = distinct_sizes as f64 / unique_sampled.max(1) as f64;
    let mut specs = if a.sizes.is_empty() {
        ["0.1%", "0.3%", "1%", "3%", "10%", "30%"]
            .iter()
            .map(|s| parse_size(s, unique))
            .collect::<Result<Vec<_>>>()?
    } else {
        a.sizes
            .iter()
            .map(|s| parse_size(s, unique))
            .collect::<Result<Vec<_>>>()?
    };
    specs.sort_by_key(|s| s.size);
    specs.dedup_by_key(|s| s.size);
    let by_bytes = specs.iter().any(|s| s.size.by_bytes());
    if by_bytes && specs.iter().any(|s| !s.size.by_bytes()) {
        bail!("sizes mix entries and bytes; give them all as one or the other");
    }
    if by_bytes && sims.contains(&Sim::Opt) {
        bail!("opt is by entries only: with sizes in bytes, leave it out of --policy");
    }
    let rate = match a.sample_rate.as_str() {
        "auto" if t.len() > EXACT_UP_TO => (SAMPLED_REQUESTS / t.len() as f64).max(MIN_AUTO_RATE),
        "auto" => 1.0,
        r => r
            .parse::<f64>()
            .ok()
            .filter(|r| *r > 0.0 && *r <= 1.0)
            .with_context(|| {
                format!("--sample-rate {r:?}: expected `auto` or a fraction in (0, 1]")
            })?,
    };
    let runner = Runner {
        t: &t,
        dir,
        quiet: a.quiet,
    };

    // LRU's curve for every size, from stack distances.
    let mrc_start = Instant::now();
    let n = t.len();
    let curve = mrc::Mrc::build(&t.keys, &t.sizes, by_bytes, rate, |i| {
        progress::show(
            a.quiet,
            &format!(
                "LRU curve: {:.0}% of {n} requests",
                100.0 * i as f64 / n as f64
            ),
        )
    });
    progress::show(a.quiet, "");
    let mrc_secs = mrc_start.elapsed().as_secs_f64();
    let sr = t.sample_rate;
    let lru_at = |c: u64| curve.hit_ratio(((c as f64) * sr).round() as u64);

    let mut rows = Vec::new();
    for &sim in &sims {
        for spec in &specs {
            let (out, secs) = runner.run(sim, spec.size)?;
            rows.push(Row {
                sim,
                spec: spec.clone(),
                out,
                secs,
            });
        }
    }

    let rec = if a.no_recommendation {
        Recommendation {
            text: String::new(),
            json: serde_json::Value::Null,
        }
    } else {
        // Bytes only mean something when the trace gave sizes.
        let mean = t.sized.then_some(mean_size);
        let args = (a.target_hit_ratio, by_bytes, mean, unique);
        recommend(&runner, &sims, &rows, &curve, args)?
    };

    if let Some(path) = &a.plot {
        draw(path, &a.trace, &rows, &sims, &specs, &curve, sr, by_bytes)?;
    }

    let cold = unique_sampled as f64 / n as f64;
    if a.json {
        let results: Vec<_> = rows
            .iter()
            .map(|r| {
                json!({
                    "policy": r.sim.name(),
                    "size": r.spec.label,
                    "capacity": r.spec.size.value(),
                    "unit": if by_bytes { "bytes" } else { "entries" },
                    "held": r.out.held,
                    "hit_ratio": r.out.hit_ratio(),
                    "byte_hit_ratio": r.out.byte_hit_ratio(),
                    "miss_ratio": 1.0 - r.out.hit_ratio(),
                    "seconds": r.secs,
                })
            })
            .collect();
        let curve_points: Vec<_> = curve_points(&specs, unique, mean_size, by_bytes)
            .into_iter()
            .map(|c| {
                let scaled = ((c as f64) * sr).round() as u64;
                json!([c, curve.hit_ratio(scaled), curve.byte_hit_ratio(scaled)])
            })
            .collect();
        let doc = json!({
            "trace": {
                "path": a.trace.display().to_string(),
                "requests": n,
                "unique_keys": unique,
                "sized": t.sized,
                "mean_value_size": mean_size,
                "sample_rate": t.sample_rate,
                "dropped": t.dropped,
                "cold_miss_ratio": cold,
            },
            "results": results,
            "lru_curve": { "sample_rate": curve.sample_rate, "seconds": mrc_secs, "points": curve_points },
            "recommendation": rec.json,
            "seconds": started.elapsed().as_secs_f64(),
        });
        println!("{doc}");
        return Ok(());
    }
    if a.csv {
        println!("policy,size,capacity,unit,held,hit_ratio,byte_hit_ratio,miss_ratio,seconds");
        for r in &rows {
            println!(
                "{},{},{},{},{},{:.6},{:.6},{:.6},{:.3}",
                r.sim.name(),
                r.spec.label,
                r.spec.size.value(),
                if by_bytes { "bytes" } else { "entries" },
                r.out.held.map(|h| h.to_string()).unwrap_or_default(),
                r.out.hit_ratio(),
                r.out.byte_hit_ratio(),
                1.0 - r.out.hit_ratio(),
                r.secs
            );
        }
        return Ok(());
    }
    println!(
        "{}: {n} requests, {unique} distinct keys{}{}; cold misses alone {:.1}%",
        a.trace.display(),
        if t.sized {
            format!(", mean value {mean_size:.0} B")
        } else {
            String::new()
        },
        if t.sample_rate < 1.0 {
            format!(
                ", sampled at {} ({} records dropped)",
                t.sample_rate, t.dropped
            )
        } else {
            String::new()
        },
        100.0 * cold
    );
    println!();
    println!("| policy | size | capacity | hit % | byte hit % | LRU hit % | seconds |");
    println!("|---|---|---|---|---|---|---|");
    for r in &rows {
        let cap = match r.out.held {
            Some(h) if !by_bytes && h != r.spec.size.value() => {
                format!("{} (held {h})", describe(r.spec.size))
            }
            _ => describe(r.spec.size),
        };
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2} |",
            r.sim.name(),
            r.spec.label,
            cap,
            100.0 * r.out.hit_ratio(),
            100.0 * r.out.byte_hit_ratio(),
            100.0 * lru_at(r.spec.size.value()),
            r.secs
        );
    }
    println!();
    println!(
        "LRU curve: {} in {mrc_secs:.2} s",
        if curve.sample_rate < 1.0 {
            format!("SHARDS at rate {}", curve.sample_rate)
        } else {
            "exact".to_string()
        }
    );
    if !rec.text.is_empty() {
        println!("{}", rec.text);
    }
    if let Some(p) = &a.plot {
        println!("miss-ratio curves: {}", p.display());
    }
    Ok(())
}

/// Sizes at which to report LRU's curve: 64 steps, log-spaced, from the
/// smallest size asked down to a tenth of it, up to every distinct key.
fn curve_points(specs: &[SizeSpec], unique: u64, mean_size: f64, by_bytes: bool) -> Vec<u64> {
    let lo = specs.first().map_or(1, |s| s.size.value()).max(10) as f64 / 10.0;
    let hi = if by_bytes {
        (unique as f64 * mean_size).max(lo * 10.0)
    } else {
        (unique as f64).max(lo * 10.0)
    };
    let steps = 64;
    let mut out: Vec<u64> = (0..=steps)
        .map(|i| (lo * (hi / lo).powf(i as f64 / steps as f64)).round() as u64)
        .collect();
    out.dedup();
    out
}

struct Recommendation {
    text: String,
    json: serde_json::Value,
}

fn recommend(
    runner: &Runner<'_>,
    sims: &[Sim],
    rows: &[Row],
    curve: &mrc::Mrc,
    (target, by_bytes, mean_size, unique): (f64, bool, Option<f64>, u64),
) -> Result<Recommendation> {
    let sim = sims[0];
    let mine: Vec<&Row> = rows.iter().filter(|r| r.sim == sim).collect();
    let sr = runner.t.sample_rate;
    let lru_size = curve
        .size_for(target)
        .map(|c| ((c as f64) / sr).round() as u64);
    let reached = mine.iter().position(|r| r.out.hit_ratio() >= target);
    // A first guess: between the two sizes replayed that straddle the
    // target, in log space; else LRU's size (an upper bound for the
    // better policies, usually); else nothing is reachable.
    let guess = match reached {
        Some(0) => Some(mine[0].spec.size.value()),
        Some(j) => {
            let (a, b) = (mine[j - 1], mine[j]);
            let (ha, hb) = (a.out.hit_ratio(), b.out.hit_ratio());
            let f = if hb > ha {
                (target - ha) / (hb - ha)
            } else {
                1.0
            };
            let (la, lb) = (
                (a.spec.size.value() as f64).ln(),
                (b.spec.size.value() as f64).ln(),
            );
            Some((la + f * (lb - la)).exp().round() as u64)
        }
        None => lru_size,
    };
    let best_possible = 1.0 - (unique as f64 * sr / runner.t.len() as f64);
    let Some(mut size) = guess else {
        let text = format!(
            "recommendation: no size reaches a {:.0}% hit ratio: {:.1}% of the requests are first requests (cold misses), so even a cache of every key hits at most {:.1}%.",
            100.0 * target,
            100.0 * (1.0 - best_possible),
            100.0 * best_possible
        );
        return Ok(Recommendation {
            json: json!({ "policy": sim.name(), "target_hit_ratio": target, "reachable": false, "max_hit_ratio": best_possible }),
            text,
        });
    };
    let make = |n: u64| {
        if by_bytes {
            Size::Bytes(n)
        } else {
            Size::Entries(n)
        }
    };
    // Check the guess by replaying it; step up by an eighth until it
    // holds (a few steps at most: the guess is interpolated).
    let mut checked = runner.run(sim, make(size))?.0;
    for _ in 0..8 {
        if checked.hit_ratio() >= target {
            break;
        }
        size = size + size / 8 + 1;
        checked = runner.run(sim, make(size))?.0;
    }
    let mut doublings = Vec::new();
    let mut prev = checked.hit_ratio();
    for k in 1..=2u64 {
        let s = size << k;
        let h = runner.run(sim, make(s))?.0.hit_ratio();
        doublings.push(json!({ "size": s, "hit_ratio": h, "gain": h - prev }));
        prev = h;
    }
    let (entries, bytes) = match (by_bytes, mean_size) {
        (true, m) => (
            (size as f64 / m.unwrap_or(1.0).max(1.0)).round() as u64,
            Some(size),
        ),
        (false, Some(m)) => (size, Some((size as f64 * m).round() as u64)),
        (false, None) => (size, None),
    };
    let mut text = format!(
        "recommendation for {}: {} entries{}, reach {:.1}% (target {:.0}%)",
        sim.name(),
        entries,
        bytes.map_or(String::new(), |b| format!(
            ", about {} of values",
            strata_shm::format_size(b)
        )),
        100.0 * checked.hit_ratio(),
        100.0 * target
    );
    if let Some(l) = lru_size {
        text.push_str(&format!("; LRU needs {}", describe(make(l))));
    }
    for d in &doublings {
        text.push_str(&format!(
            "\n  doubling to {}: {:.1}% ({:+.1} points)",
            describe(make(d["size"].as_u64().unwrap_or(0))),
            100.0 * d["hit_ratio"].as_f64().unwrap_or(0.0),
            100.0 * d["gain"].as_f64().unwrap_or(0.0)
        ));
    }
    Ok(Recommendation {
        json: json!({
            "policy": sim.name(),
            "target_hit_ratio": target,
            "reachable": checked.hit_ratio() >= target,
            "entries": entries,
            "bytes": bytes,
            "hit_ratio": checked.hit_ratio(),
            "lru_size": lru_size,
            "doublings": doublings,
        }),
        text,
    })
}

#[allow(clippy::too_many_arguments)]
fn draw(
    path: &Path,
    trace_path: &Path,
    rows: &[Row],
    sims: &[Sim],
    specs: &[SizeSpec],
    curve: &mrc::Mrc,
    sr: f64,
    by_bytes: bool,
) -> Result<()> {
    let unique_hint = specs.last().map_or(1, |s| s.size.value()).max(1);
    let mut series = Vec::new();
    for &sim in sims {
        let points = rows
            .iter()
            .filter(|r| r.sim == sim)
            .map(|r| {
                let x = match (sim, r.out.held) {
                    (Sim::L0(_), Some(h)) if !by_bytes => h,
                    _ => r.spec.size.value(),
                };
                (x as f64, 1.0 - r.out.hit_ratio())
            })
            .collect();
        series.push(plot::Series {
            name: sim.name(),
            points,
            dense: false,
        });
    }
    let lo = specs.first().map_or(1, |s| s.size.value()) as f64 / 1.5;
    let hi = unique_hint as f64 * 1.5;
    let lru: Vec<(f64, f64)> = (0..=200)
        .map(|i| lo * (hi / lo).powf(i as f64 / 200.0))
        .map(|x| (x, 1.0 - curve.hit_ratio((x * sr).round() as u64)))
        .collect();
    series.push(plot::Series {
        name: if curve.sample_rate < 1.0 {
            format!("lru (SHARDS {})", curve.sample_rate)
        } else {
            "lru (exact curve)".into()
        },
        points: lru,
        dense: true,
    });
    let name = trace_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    plot::svg(
        path,
        &format!("miss ratio by cache size: {name}"),
        if by_bytes {
            "cache size (bytes)"
        } else {
            "cache size (entries)"
        },
        &series,
    )
}
