//! `strata`: create, inspect and exercise shared-memory caches.
//!
//! Exit codes: 0 success, 1 key not found (get, del), 2 bad usage,
//! 3 any other error (the message says which and what to do).

mod bench;
mod commands;
mod progress;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "strata", version, about = "A tiered, zero-copy cache for ML serving", long_about = None)]
struct Cli {
    /// Directory holding segment files.
    #[arg(
        long,
        global = true,
        env = "STRATA_SHM_DIR",
        default_value = "/dev/shm"
    )]
    dir: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
struct NameArg {
    /// Name of the cache segment.
    #[arg(long, short = 'n', env = "STRATA_NAME", default_value = "default")]
    name: String,
}

#[derive(Subcommand)]
enum Command {
    /// Create a segment, or attach to it if it exists and is compatible.
    Init {
        #[command(flatten)]
        name: NameArg,
        /// Size of the segment, e.g. 512MiB or 4GiB [default: 1GiB]. An
        /// existing segment keeps its size.
        #[arg(long, short = 'm')]
        memory: Option<String>,
        /// Index capacity (default: one entry per 4 KiB of memory; each
        /// costs 144 bytes of index).
        #[arg(long)]
        max_entries: Option<u64>,
        /// Keep 4 KiB pages. By default the segment is built on 2 MiB
        /// pages where the kernel can (Linux 6.1 and later), which makes
        /// reads faster.
        #[arg(long)]
        no_huge_pages: bool,
    },
    /// Remove a segment's name; attached processes keep it until they exit.
    Drop {
        #[command(flatten)]
        name: NameArg,
    },
    /// Store a value: the VALUE argument, or standard input when it is
    /// left out (for binary data, such as `strata set emb:1 < row.bin`).
    Set {
        /// The key (at most 8192 bytes).
        key: String,
        /// The value, stored as its UTF-8 bytes. Leave it out to store the
        /// bytes of standard input exactly.
        value: Option<String>,
        #[command(flatten)]
        name: NameArg,
        /// Time to live, in seconds.
        #[arg(long)]
        ttl: Option<f64>,
    },
    /// Print a value (exit 1 if absent). Its bytes are written exactly,
    /// with a newline added only on a terminal, so `strata get KEY > FILE`
    /// gives back what was stored.
    Get {
        /// The key.
        key: String,
        #[command(flatten)]
        name: NameArg,
    },
    /// Delete a key (exit 1 if absent).
    Del {
        /// The key.
        key: String,
        #[command(flatten)]
        name: NameArg,
    },
    /// Print a segment's statistics.
    Status {
        #[command(flatten)]
        name: NameArg,
        /// One JSON object instead of a table.
        #[arg(long)]
        json: bool,
        /// Also walk the whole segment and report broken invariants.
        #[arg(long)]
        check: bool,
    },
    /// Measure L0 against a plain shared array, the same array behind a
    /// minimal index, and an in-process HashMap.
    Bench(bench::BenchArgs),
    /// One process of a benchmark run (started by `strata bench`).
    #[command(hide = true)]
    BenchWorker(bench::WorkerArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Init {
            name,
            memory,
            max_entries,
            no_huge_pages,
        } => commands::init(
            &cli.dir,
            &name.name,
            memory.as_deref(),
            max_entries,
            !no_huge_pages,
        ),
        Command::Drop { name } => commands::drop_segment(&cli.dir, &name.name),
        Command::Set {
            key,
            value,
            name,
            ttl,
        } => commands::set(&cli.dir, &name.name, &key, value.as_deref(), ttl),
        Command::Get { key, name } => commands::get(&cli.dir, &name.name, &key),
        Command::Del { key, name } => commands::del(&cli.dir, &name.name, &key),
        Command::Status { name, json, check } => {
            commands::status(&cli.dir, &name.name, json, check)
        }
        Command::Bench(args) => bench::run(&cli.dir, &args),
        Command::BenchWorker(args) => bench::worker(&cli.dir, &args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("strata: {e:#}");
            ExitCode::from(3)
        }
    }
}
