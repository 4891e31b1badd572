//! `strata bench`: L0 under concurrent readers and a writer, against the
//! floor (a plain array in shared memory, no index), the floor behind a
//! minimal index (what any hash lookup adds to it at the least) and an
//! in-process HashMap, all measured in the same run on the same keys.

mod hist;
mod min_index;
mod worker;
mod workload;

use crate::progress::show as progress;
use anyhow::{bail, Context, Result};
use hist::Hist;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::Instant;
use strata_shm::classes;
use strata_shm::mem::Region;
use strata_shm::{format_size, parse_size, PutOptions, Segment, SegmentOptions};
use workload::{key, stamp};

#[derive(clap::Args, Clone)]
pub struct BenchArgs {
    /// Keys to load.
    #[arg(long, default_value_t = 200_000)]
    keys: u64,
    /// Bytes per value (at least 16).
    #[arg(long, default_value_t = 4096)]
    value_bytes: u64,
    /// Reader processes (default: the number of cores).
    #[arg(long)]
    readers: Option<u64>,
    /// Seconds each measured case runs, split into turns that alternate
    /// with its peers' (L0 and its three peers take turns).
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// Puts per second of the writer running alongside the readers.
    #[arg(long, default_value_t = 20_000)]
    write_rate: u64,
    /// Segment size (default: enough for the keys).
    #[arg(long)]
    memory: Option<String>,
    /// One JSON object instead of a table.
    #[arg(long)]
    json: bool,
    /// Keep 4 KiB pages for the segment and the floor (by default both get
    /// 2 MiB pages where the kernel can build them).
    #[arg(long)]
    no_huge_pages: bool,
}

#[derive(clap::Args, Clone)]
pub struct WorkerArgs {
    #[arg(long)]
    role: String,
    #[arg(long, default_value = "l0")]
    kind: String,
    #[arg(long, default_value = "zipf")]
    dist: String,
    #[arg(long)]
    segment: String,
    #[arg(long, default_value = "")]
    floor: String,
    #[arg(long, default_value = "")]
    table: String,
    #[arg(long)]
    keys: u64,
    #[arg(long)]
    value_bytes: u64,
    #[arg(long)]
    seconds: f64,
    #[arg(long, default_value_t = 0)]
    rate: u64,
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

pub fn worker(dir: &Path, a: &WorkerArgs) -> Result<ExitCode> {
    worker::run(dir, a)?;
    Ok(ExitCode::SUCCESS)
}

/// Removes the benchmark's segment and its peers' files however the run
/// ends.
struct Cleanup {
    dir: PathBuf,
    name: String,
    files: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = Segment::unlink(&self.name, &self.dir);
        for f in &self.files {
            let _ = std::fs::remove_file(f);
        }
    }
}

#[derive(Default)]
struct Phase {
    hist: Hist,
    ops: u64,
    torn: u64,
    missing: u64,
    gets_per_s: f64,
    puts_per_s: f64,
    shared_kb: u64,
    private_kb: u64,
}

impl Phase {
    /// Pools another round of the same kind: rates and memory add up here
    /// and are averaged by the caller.
    fn add(&mut self, o: Phase) {
        self.hist.merge(&o.hist);
        self.ops += o.ops;
        self.torn += o.torn;
        self.missing += o.missing;
        self.gets_per_s += o.gets_per_s;
        self.puts_per_s += o.puts_per_s;
        self.shared_kb += o.shared_kb;
        self.private_kb += o.private_kb;
    }
}

struct Ctx<'a> {
    dir: &'a Path,
    args: &'a BenchArgs,
    segment: String,
    floor: String,
    table: String,
}

impl Ctx<'_> {
    fn spawn(
        &self,
        role: &str,
        kind: &str,
        dist: &str,
        rate: u64,
        seed: u64,
        seconds: f64,
    ) -> Result<Child> {
        let exe = std::env::current_exe().context("finding the strata binary")?;
        Command::new(exe)
            .arg("--dir")
            .arg(self.dir)
            .arg("bench-worker")
            .args(["--role", role, "--kind", kind, "--dist", dist])
            .args(["--segment", &self.segment, "--floor", &self.floor])
            .args(["--table", &self.table])
            .args(["--keys", &self.args.keys.to_string()])
            .args(["--value-bytes", &self.args.value_bytes.to_string()])
            .args(["--seconds", &seconds.to_string()])
            .args(["--rate", &rate.to_string(), "--seed", &seed.to_string()])
            .stdout(Stdio::piped())
            .spawn()
            .context("starting a benchmark worker")
    }

    fn collect(child: Child) -> Result<Value> {
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!("a benchmark worker failed ({})", out.status);
        }
        let line = String::from_utf8_lossy(&out.stdout);
        serde_json::from_str(line.trim()).context("reading a worker's report")
    }

    /// Runs `readers` reader processes of `kind` for `seconds`, with the
    /// writer alongside when `write_rate` > 0.
    fn phase(
        &self,
        kind: &str,
        dist: &str,
        readers: u64,
        write_rate: u64,
        seconds: f64,
    ) -> Result<Phase> {
        let writer = if write_rate > 0 {
            Some(self.spawn("writer", "l0", dist, write_rate, 99, seconds)?)
        } else {
            None
        };
        let children: Vec<Child> = (0..readers)
            .map(|r| self.spawn("reader", kind, dist, 0, 1000 + r, seconds))
            .collect::<Result<_>>()?;
        let mut p = Phase::default();
        for c in children {
            let v = Self::collect(c)?;
            p.hist.merge(&Hist::from_json(&v["hist"]));
            let ops = v["ops"].as_u64().unwrap_or(0);
            p.ops += ops;
            p.torn += v["torn"].as_u64().unwrap_or(0);
            p.missing += v["missing"].as_u64().unwrap_or(0);
            p.gets_per_s += ops as f64 / v["seconds"].as_f64().unwrap_or(1.0).max(1e-9);
            p.shared_kb += v["shared_kb"].as_u64().unwrap_or(0);
            p.private_kb += v["private_kb"].as_u64().unwrap_or(0);
        }
        if let Some(w) = writer {
            let v = Self::collect(w)?;
            p.puts_per_s = v["ops"].as_u64().unwrap_or(0) as f64
                / v["seconds"].as_f64().unwrap_or(1.0).max(1e-9);
        }
        Ok(p)
    }

    /// Phases of every kind in `kinds`, each run in ROUNDS turns of an
    /// equal share of `--seconds`, the kinds taking turns. A slow spell of
    /// a shared machine then falls on all of them alike, which keeps their
    /// ratios steady; each kind's histograms and counts are pooled.
    fn interleaved<const N: usize>(
        &self,
        kinds: [&str; N],
        dist: &str,
        readers: u64,
        write_rate: u64,
    ) -> Result<[Phase; N]> {
        let seconds = self.args.seconds / ROUNDS as f64;
        let mut out: [Phase; N] = std::array::from_fn(|_| Phase::default());
        for _ in 0..ROUNDS {
            for (kind, total) in kinds.iter().zip(out.iter_mut()) {
                total.add(self.phase(kind, dist, readers, write_rate, seconds)?);
            }
        }
        for p in &mut out {
            p.gets_per_s /= ROUNDS as f64;
            p.puts_per_s /= ROUNDS as f64;
            p.shared_kb /= ROUNDS as u64;
            p.private_kb /= ROUNDS as u64;
        }
        Ok(out)
    }
}

/// Turns each kind of phase takes in a comparison.
const ROUNDS: u32 = 3;

fn default_memory(keys: u64, value_bytes: u64) -> u64 {
    // The bench's keys are 14 bytes, with no type tag.
    let class = classes::choose(14, 0, value_bytes);
    let per_entry = if classes::is_class(class) {
        classes::size(class)
    } else {
        value_bytes + 128
    };
    // Room for the data, half-empty slabs per shard, and the writer's
    // in-flight replacements.
    keys * per_entry * 5 / 4 + (256 << 20)
}

/// A new file of `len` zero bytes at `path` for a peer, mapped whole.
fn create_mapped(path: &Path, len: u64) -> Result<(std::fs::File, Region)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.set_len(len)?;
    let region = Region::map(&file, len)?;
    Ok((file, region))
}

/// Gives a peer's file the 2 MiB pages the segment got, so that the ratio
/// between them is the work, not a difference in address translation.
/// Whether any part of it got them.
fn huge_like_segment(json: bool, what: &str, file: &std::fs::File, region: &Region) -> bool {
    let report = crate::progress::huge_pages(json, what);
    strata_shm::huge::back_with_huge_pages(file, region, |done, total| report(done, total)) > 0
}

pub fn run(dir: &Path, args: &BenchArgs) -> Result<ExitCode> {
    if args.value_bytes < 16 {
        bail!("--value-bytes must be at least 16 (each value carries a 16-byte check)");
    }
    if args.keys == 0 || args.keys > u32::MAX as u64 {
        bail!("--keys must be between 1 and {}", u32::MAX);
    }
    if !args.seconds.is_finite() || args.seconds <= 0.0 {
        bail!("--seconds must be positive");
    }
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(2);
    let readers = args.readers.unwrap_or(cores).max(1);
    let memory = match &args.memory {
        Some(m) => parse_size(m)?,
        None => default_memory(args.keys, args.value_bytes),
    };
    let pid = std::process::id();
    let name = format!("bench-{pid}");
    let floor_path = dir.join(format!("strata-bench-floor-{pid}"));
    let table_path = dir.join(format!("strata-bench-index-{pid}"));
    let _cleanup = Cleanup {
        dir: dir.to_path_buf(),
        name: name.clone(),
        files: vec![floor_path.clone(), table_path.clone()],
    };
    let seg = Segment::create(
        &name,
        &SegmentOptions::default()
            .dir(dir)
            .memory(memory)
            .huge_pages(!args.no_huge_pages)
            .on_progress(crate::progress::creation(args.json)),
    )?;

    let started = Instant::now();
    let floor_len = args.keys * args.value_bytes;
    let (floor_file, floor) = create_mapped(&floor_path, floor_len)?;
    let floor_huge = seg.huge_pages() && huge_like_segment(args.json, "floor", &floor_file, &floor);
    let mut buf = vec![0xABu8; args.value_bytes as usize];
    let no = PutOptions::default();
    for i in 0..args.keys {
        stamp(&mut buf, i, 0);
        seg.put(&key(i), &buf, &no)?;
        floor.write_bytes(i * args.value_bytes, &buf);
        if i % 10_000 == 0 {
            progress(args.json, &format!("loading keys: {i}/{}", args.keys));
        }
    }
    let loaded = seg.len();
    if loaded != args.keys {
        bail!(
            "only {loaded} of {} keys fit in {}; pass a larger --memory",
            args.keys,
            format_size(memory)
        );
    }
    let load_s = started.elapsed().as_secs_f64();
    drop(floor);
    progress(args.json, "building the minimal index");
    let (table_file, table) = min_index::build(&table_path, args.keys, key)?;
    if seg.huge_pages() {
        huge_like_segment(args.json, "minimal index", &table_file, &table);
    }
    drop(table);

    let ctx = Ctx {
        dir,
        args,
        segment: name.clone(),
        floor: floor_path.display().to_string(),
        table: table_path.display().to_string(),
    };
    let wr = args.write_rate;
    let mut results = serde_json::Map::new();
    let mut torn = 0;
    let mut summary = Vec::new();
    for dist in ["zipf", "uniform"] {
        progress(
            args.json,
            &format!("{dist}: L0 and its three peers in turns, {readers} readers and a writer"),
        );
        let [l0, fl, mi, hm] =
            ctx.interleaved(["l0", "floor", "min_index", "hashmap"], dist, readers, wr)?;
        torn += l0.torn + fl.torn + mi.torn + hm.torn;
        let (p50, f50, m50, h50) = (
            l0.hist.quantile(0.5),
            fl.hist.quantile(0.5),
            mi.hist.quantile(0.5),
            hm.hist.quantile(0.5),
        );
        let v = json!({
            "get_p50_ns": p50,
            "get_p99_ns": l0.hist.quantile(0.99),
            "get_p999_ns": l0.hist.quantile(0.999),
            "floor_p50_ns": f50,
            "floor_p99_ns": fl.hist.quantile(0.99),
            "min_index_p50_ns": m50,
            "min_index_p99_ns": mi.hist.quantile(0.99),
            "hashmap_p50_ns": h50,
            "hashmap_p99_ns": hm.hist.quantile(0.99),
            "ratio_floor": p50 as f64 / f50.max(1) as f64,
            "ratio_min_index": p50 as f64 / m50.max(1) as f64,
            "ratio_hashmap": p50 as f64 / h50.max(1) as f64,
            "gets_per_s": l0.gets_per_s,
            "floor_gets_per_s": fl.gets_per_s,
            "min_index_gets_per_s": mi.gets_per_s,
            "hashmap_gets_per_s": hm.gets_per_s,
            "writer_puts_per_s": l0.puts_per_s,
            "misses": l0.missing,
            // Every key is loaded in every peer: a miss there is a bug.
            "peer_misses": fl.missing + mi.missing + hm.missing,
            "torn_reads": l0.torn,
            "reader_shared_kb": l0.shared_kb,
            "reader_private_kb": l0.private_kb,
            "hashmap_reader_private_kb": hm.private_kb,
        });
        summary.push((dist, v.clone()));
        results.insert(dist.to_string(), v);
    }
    progress(args.json, "zipf: L0 with 1 reader and a writer (scaling)");
    let [one] = ctx.interleaved(["l0"], "zipf", 1, wr)?;
    torn += one.torn;
    progress(args.json, "writer alone, unthrottled");
    let max_put = ctx.phase("l0", "zipf", 0, u64::MAX, args.seconds)?;
    progress(args.json, "");

    let mut top = results.remove("zipf").unwrap_or(json!({}));
    let n_gets = top["gets_per_s"].as_f64().unwrap_or(0.0);
    top["puts_per_s"] = json!(max_put.puts_per_s);
    top["torn_reads"] = json!(torn);
    top["readers"] = json!(readers);
    top["keys"] = json!(args.keys);
    top["value_bytes"] = json!(args.value_bytes);
    top["seconds_per_phase"] = json!(args.seconds);
    top["rounds_per_phase"] = json!(ROUNDS);
    top["write_rate"] = json!(wr);
    top["memory_bytes"] = json!(memory);
    top["load_seconds"] = json!(load_s);
    top["huge_pages"] = json!(seg.huge_pages());
    top["floor_huge_pages"] = json!(floor_huge);
    top["uniform"] = results.remove("uniform").unwrap_or(json!({}));
    top["scaling"] = json!({
        "gets_per_s_1_reader": one.gets_per_s,
        "gets_per_s_n_readers": n_gets,
        "ratio": n_gets / one.gets_per_s.max(1.0),
    });
    let stats = seg.stats()?;
    top["segment"] = crate::commands::stats_json(&stats);

    if args.json {
        println!("{top}");
    } else {
        print_report(&top, &summary, readers, args, memory);
    }
    Ok(if torn == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(3)
    })
}

fn print_report(
    top: &Value,
    summary: &[(&str, Value)],
    readers: u64,
    args: &BenchArgs,
    memory: u64,
) {
    let f = |v: &Value| v.as_f64().unwrap_or(0.0);
    let u = |v: &Value| v.as_u64().unwrap_or(0);
    println!(
        "strata bench: {} keys x {} B in a {} segment ({} pages, the floor {}); {readers} reader processes and a writer at {} puts/s; {} s per case, in {ROUNDS} turns",
        args.keys,
        args.value_bytes,
        format_size(memory),
        if top["huge_pages"] == true { "2 MiB" } else { "4 KiB" },
        if top["floor_huge_pages"] == true { "2 MiB" } else { "4 KiB" },
        args.write_rate,
        args.seconds
    );
    println!();
    println!(
        "{:<8} {:<22} {:>9} {:>9} {:>9} {:>14}",
        "access", "get (incl. timer)", "p50 ns", "p99 ns", "p999 ns", "gets/s"
    );
    // One table row: a peer's latency quantiles (p999 only for L0) and rate.
    let row = |dist: &str, label: &str, v: &Value, prefix: &str, p999: bool| {
        let q = |name: &str| u(&v[format!("{prefix}_{name}_ns")]).to_string();
        let rate = if prefix == "get" {
            "gets_per_s".to_string()
        } else {
            format!("{prefix}_gets_per_s")
        };
        println!(
            "{:<8} {:<22} {:>9} {:>9} {:>9} {:>14.0}",
            dist,
            label,
            q("p50"),
            q("p99"),
            if p999 { q("p999") } else { String::new() },
            f(&v[rate])
        );
    };
    for (dist, v) in summary {
        row(dist, "L0 (strata)", v, "get", true);
        row("", "floor (shared array)", v, "floor", false);
        row("", "floor + minimal index", v, "min_index", false);
        row("", "HashMap (per process)", v, "hashmap", false);
        println!(
            "{:<8} L0 p50 = {:.2}x the floor, {:.2}x the floor + minimal index, {:.2}x the HashMap; torn reads {}",
            "",
            f(&v["ratio_floor"]),
            f(&v["ratio_min_index"]),
            f(&v["ratio_hashmap"]),
            v["torn_reads"]
        );
    }
    let sc = &top["scaling"];
    println!();
    println!(
        "scaling  1 reader {:.0} gets/s, {readers} readers {:.0} gets/s: {:.2}x",
        f(&sc["gets_per_s_1_reader"]),
        f(&sc["gets_per_s_n_readers"]),
        f(&sc["ratio"])
    );
    println!(
        "writer   {:.0} puts/s of {} B values, alone and unthrottled",
        f(&top["puts_per_s"]),
        args.value_bytes
    );
    println!(
        "memory   L0 readers together: {} shared, {} private; HashMap readers: {} private",
        format_size(top["reader_shared_kb"].as_u64().unwrap_or(0) * 1024),
        format_size(top["reader_private_kb"].as_u64().unwrap_or(0) * 1024),
        format_size(top["hashmap_reader_private_kb"].as_u64().unwrap_or(0) * 1024)
    );
    println!("torn     {} torn reads in all phases", top["torn_reads"]);
    if top["huge_pages"] != true && !args.no_huge_pages {
        // Page walks are a large part of a read over many keys with 4 KiB
        // pages: say how to make them shorter.
        println!();
        println!(
            "pages    4 KiB: this kernel would not build 2 MiB pages for the segment (Linux 6.1 and later do); a tmpfs mounted with huge=within_size, given as --dir, has them, and they make reads faster (docs/huge-pages.md)"
        );
    }
}
