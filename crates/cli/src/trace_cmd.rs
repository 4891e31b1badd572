//! `strata trace record | stop`: records the reads a running cache
//! serves, from every process, into a trace file `strata simulate` reads.

use crate::commands::Ctx;
use crate::progress;
use crate::simulate::trace::{strata_header, STRATA_HEADER};
use anyhow::{bail, Context, Result};
use std::fs::File;
use std::io::{BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};
use strata_shm::{format_size, TraceRecord};

#[derive(clap::Subcommand)]
pub enum TraceCommand {
    /// Record the keys every process reads from the cache, with their
    /// value sizes, for `--seconds` (or until Ctrl-C), into a file for
    /// `strata simulate`. Keys are sampled by their hash, so the sample
    /// is a consistent subset of keys.
    Record(RecordArgs),
    /// Turn recording off, for a recorder that was killed while it ran.
    Stop {
        #[command(flatten)]
        name: crate::NameArg,
    },
}

#[derive(clap::Args)]
pub struct RecordArgs {
    #[command(flatten)]
    pub name: crate::NameArg,
    /// How long to record.
    #[arg(long, default_value_t = 60.0)]
    pub seconds: f64,
    /// The share of keys recorded, in (0, 1].
    #[arg(long, default_value_t = 0.01)]
    pub sample_rate: f64,
    /// The trace file to write.
    #[arg(long, short = 'o')]
    pub output: PathBuf,
    /// No progress line.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

pub fn run(ctx: &Ctx, cmd: &TraceCommand) -> Result<ExitCode> {
    match cmd {
        TraceCommand::Record(a) => record(ctx, a),
        TraceCommand::Stop { name } => {
            let seg = ctx.open(&name.name)?;
            let was = seg.trace_rate();
            seg.trace_stop();
            match was {
                Some(r) => println!("recording on {:?} (sample rate {r}) stopped", name.name),
                None => println!("{:?} was not recording", name.name),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn lock_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("strata-trace.{name}.lock"))
}

/// Stops on SIGINT or SIGTERM: a flag a thread sets.
fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            else {
                return;
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
        });
        f.store(true, Relaxed);
    });
    flag
}

fn record(ctx: &Ctx, a: &RecordArgs) -> Result<ExitCode> {
    if !(a.seconds > 0.0 && a.seconds.is_finite()) {
        bail!("--seconds must be a positive number, not {}", a.seconds);
    }
    if !(a.sample_rate > 0.0 && a.sample_rate <= 1.0) {
        bail!(
            "--sample-rate must be a fraction in (0, 1], not {}",
            a.sample_rate
        );
    }
    let seg = ctx.open(&a.name.name)?;
    // One recorder per cache: the ring has one consumer.
    let lock_file = lock_path(&ctx.dir, &a.name.name);
    let lock = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_file)
        .with_context(|| format!("cannot open {}", lock_file.display()))?;
    match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(rustix::io::Errno::WOULDBLOCK) => {
            bail!(
                "another `strata trace record` is recording {:?}",
                a.name.name
            )
        }
        Err(e) => {
            return Err(std::io::Error::from(e))
                .with_context(|| format!("cannot lock {}", lock_file.display()))
        }
    }
    let file =
        File::create(&a.output).with_context(|| format!("cannot create {}", a.output.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    out.write_all(&[0u8; STRATA_HEADER])?;
    let stop = stop_flag();
    let rate = seg.trace_start(a.sample_rate)?;
    let result = drain_for(&seg, a, &stop, &mut out);
    seg.trace_stop();
    // What readers published before the stop is still in the ring.
    let (records, dropped) = match result {
        Ok(n) => {
            let mut buf = Vec::new();
            let mut n = n;
            loop {
                buf.clear();
                let got = seg.trace_drain(&mut buf, 1 << 16, false);
                write_records(&mut out, &buf)?;
                n += got as u64;
                if got == 0 {
                    break;
                }
            }
            (n, seg.trace_dropped())
        }
        Err(e) => return Err(e),
    };
    let mut file = out.into_inner().map_err(|e| e.into_error())?;
    file.seek(SeekFrom::Start(0))?;
    file.write_all(&strata_header(rate, dropped))?;
    file.sync_all()?;
    drop(lock);
    let _ = std::fs::remove_file(&lock_file);
    println!(
        "{records} reads recorded into {} ({}), sample rate {rate}, {dropped} dropped (ring full)",
        a.output.display(),
        format_size(STRATA_HEADER as u64 + 16 * records)
    );
    Ok(ExitCode::SUCCESS)
}

fn write_records(out: &mut impl Write, recs: &[TraceRecord]) -> Result<()> {
    for r in recs {
        out.write_all(&r.hash.to_le_bytes())?;
        out.write_all(&(r.size.min(u64::from(u32::MAX)) as u32).to_le_bytes())?;
        out.write_all(&u32::from(r.hit).to_le_bytes())?;
    }
    Ok(())
}

fn drain_for(
    seg: &strata_shm::Segment,
    a: &RecordArgs,
    stop: &AtomicBool,
    out: &mut impl Write,
) -> Result<u64> {
    let start = Instant::now();
    let until = Duration::from_secs_f64(a.seconds);
    let mut buf = Vec::with_capacity(1 << 16);
    let mut n = 0u64;
    let mut stalled_since: Option<Instant> = None;
    let mut last_shown = Instant::now();
    while start.elapsed() < until && !stop.load(Relaxed) {
        buf.clear();
        // A slot that stays reserved but unpublished for 100 ms belongs to
        // a reader that died between the two: skip it.
        let skip = stalled_since.is_some_and(|t| t.elapsed() > Duration::from_millis(100));
        let got = seg.trace_drain(&mut buf, 1 << 16, skip);
        write_records(out, &buf)?;
        n += got as u64;
        if got == 0 {
            stalled_since.get_or_insert_with(Instant::now);
            std::thread::sleep(Duration::from_millis(2));
        } else {
            stalled_since = None;
        }
        if last_shown.elapsed() > Duration::from_millis(250) {
            last_shown = Instant::now();
            progress::show(
                a.quiet,
                &format!(
                    "recording {:?}: {n} reads, {} dropped, {:.0} s of {:.0} s",
                    a.name.name,
                    seg.trace_dropped(),
                    start.elapsed().as_secs_f64(),
                    a.seconds
                ),
            );
        }
    }
    progress::show(a.quiet, "");
    Ok(n)
}
