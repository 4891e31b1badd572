//! `strata`: create, inspect and exercise shared-memory caches.
//!
//! Exit codes: 0 success, 1 key or segment not found, 2 bad usage (an
//! unknown command or an invalid argument), 3 any other error (the
//! message says which and what to do). Output cut short by a closed pipe
//! (`strata keys | head`) ends quietly with 0.

mod bench;
mod commands;
mod load_cmd;
mod progress;
mod server_cmd;
mod simulate;
mod trace_cmd;

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
    /// Attach to segments that another user owns, or that others may
    /// write. Refused by default, since such a file could have been
    /// planted; for deliberate sharing between users, where the file's
    /// group and mode govern access.
    #[arg(long, global = true)]
    trust_foreign: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args, Clone)]
pub(crate) struct NameArg {
    /// Name of the cache segment.
    #[arg(long, short = 'n', env = "STRATA_NAME", default_value = "default",
          value_parser = parse_name)]
    pub(crate) name: String,
}

pub(crate) fn parse_name(s: &str) -> Result<String, String> {
    strata_shm::validate_name(s)
        .map(|_| s.to_string())
        .map_err(|e| e.to_string())
}

pub(crate) fn parse_policy(s: &str) -> Result<strata_shm::Policy, String> {
    s.parse()
}

pub(crate) fn parse_memory(s: &str) -> Result<u64, String> {
    strata_shm::parse_size(s).map_err(|e| e.to_string())
}

fn parse_ttl(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .parse()
        .map_err(|_| format!("{s:?} is not a number of seconds"))?;
    strata_shm::ttl_from_secs(secs).map_err(|e| e.to_string())
}

#[derive(Subcommand)]
enum Command {
    /// Serve a cache over the Redis protocol (port 6380): hot keys from
    /// shared memory, the rest from an upstream Redis if one is given.
    /// Returns once the server accepts connections; `--foreground` stays.
    Start(server_cmd::StartArgs),
    /// Stop a cache's server: it stops accepting, finishes in-flight
    /// commands, sends queued writes to Redis, and exits.
    Stop {
        #[command(flatten)]
        name: NameArg,
    },
    /// Create a segment, or attach to it if it exists and is compatible.
    Init {
        #[command(flatten)]
        name: NameArg,
        /// Size of the segment, e.g. 512MiB or 4GiB [default: 1GiB]. An
        /// existing segment keeps its size. Units: KiB, MiB, GiB, TiB (or
        /// K, M, G, T) are powers of 1024; KB, MB, GB, TB powers of 1000.
        #[arg(long, short = 'm', value_parser = parse_memory)]
        memory: Option<u64>,
        /// Index capacity: the most entries the segment holds (default:
        /// one per 4 KiB of memory; each costs about 200 bytes of index).
        #[arg(long)]
        max_entries: Option<u64>,
        /// Eviction policy: wtinylfu (default), s3fifo, lru, lfu, fifo, or
        /// none (refuse new keys when full). Fixed at creation.
        #[arg(long, value_parser = parse_policy)]
        policy: Option<strata_shm::Policy>,
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
        /// Time to live, in seconds (fractions allowed).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
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
    /// List the segments in the directory, with their size and entries.
    List {
        /// One JSON object per segment, one per line.
        #[arg(long)]
        json: bool,
    },
    /// Print the keys (one per line, as they come: nothing is buffered),
    /// or those matching a Redis-style glob: `*`, `?`, `[a-z]`, `\*`.
    Keys {
        /// Only keys matching this pattern [default: *].
        pattern: Option<String>,
        #[command(flatten)]
        name: NameArg,
    },
    /// Print a key's remaining time to live in seconds, or -1 if it has
    /// none (exit 1 if the key is absent).
    Ttl {
        /// The key.
        key: String,
        #[command(flatten)]
        name: NameArg,
    },
    /// Set a key's time to live, in seconds (exit 1 if the key is absent).
    Expire {
        /// The key.
        key: String,
        /// Seconds from now (fractions allowed).
        #[arg(value_parser = parse_ttl)]
        seconds: Duration,
        #[command(flatten)]
        name: NameArg,
    },
    /// Remove a key's time to live (exit 1 if the key is absent).
    Persist {
        /// The key.
        key: String,
        #[command(flatten)]
        name: NameArg,
    },
    /// Load values from Redis into a cache's shared memory ahead of
    /// traffic: the KEYS given, the keys matching --pattern (SCAN), or the
    /// keys in --file (one per line, as `save_hot_keys` writes them).
    Warm {
        /// Keys to load.
        keys: Vec<String>,
        #[command(flatten)]
        name: NameArg,
        /// Redis to load from: redis://[user:password@]host:port/db.
        #[arg(long, env = "STRATA_REDIS", conflicts_with = "redis_cluster")]
        redis: Option<String>,
        /// A Redis Cluster to load from, by any of its nodes.
        #[arg(long, num_args = 1..)]
        redis_cluster: Vec<String>,
        /// Load every key matching this Redis glob (through SCAN).
        #[arg(long, conflicts_with_all = ["keys", "file"])]
        pattern: Option<String>,
        /// Load the keys listed in this file.
        #[arg(long, conflicts_with = "keys")]
        file: Option<PathBuf>,
        /// Write the N keys the cache reads most into --file instead of
        /// loading (for warming another machine).
        #[arg(long, value_name = "N", requires = "file")]
        save_hot: Option<usize>,
    },
    /// Fill a feature table from a Parquet file (built with the `parquet`
    /// feature): `strata load user users.parquet --schema
    /// 'age:int32,emb:float32[64]' --id-column user_id`. The cache must
    /// exist (`strata init`, with --max-entries for the rows).
    Load(load_cmd::LoadArgs),
    /// Size a cache from a trace: replay it through L0, L1 and other
    /// policies at several sizes, draw the miss-ratio curves and
    /// recommend a size: `strata simulate trace.csv --target-hit-ratio
    /// 0.9 --plot mrc.svg`.
    Simulate(simulate::SimulateArgs),
    /// Record the reads a running cache serves (`strata trace record -o
    /// trace.bin`), for `strata simulate trace.bin`.
    #[command(subcommand)]
    Trace(trace_cmd::TraceCommand),
    /// Print a segment's statistics, and its server's if one is running.
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
    let ctx = commands::Ctx {
        dir: cli.dir,
        trust_foreign: cli.trust_foreign,
    };
    let result = match cli.command {
        Command::Start(args) => server_cmd::start(&ctx, args),
        Command::Stop { name } => server_cmd::stop(&ctx, &name.name),
        Command::Init {
            name,
            memory,
            max_entries,
            policy,
            no_huge_pages,
        } => commands::init(
            &ctx,
            &name.name,
            memory,
            max_entries,
            policy,
            !no_huge_pages,
        ),
        Command::Drop { name } => commands::drop_segment(&ctx, &name.name),
        Command::Set {
            key,
            value,
            name,
            ttl,
        } => commands::set(&ctx, &name.name, &key, value.as_deref(), ttl),
        Command::Get { key, name } => commands::get(&ctx, &name.name, &key),
        Command::Del { key, name } => commands::del(&ctx, &name.name, &key),
        Command::List { json } => commands::list(&ctx, json),
        Command::Keys { pattern, name } => commands::keys(&ctx, &name.name, pattern.as_deref()),
        Command::Ttl { key, name } => commands::ttl(&ctx, &name.name, &key),
        Command::Expire { key, seconds, name } => {
            commands::expire(&ctx, &name.name, &key, Some(seconds))
        }
        Command::Persist { key, name } => commands::expire(&ctx, &name.name, &key, None),
        Command::Warm {
            keys,
            name,
            redis,
            redis_cluster,
            pattern,
            file,
            save_hot,
        } => commands::warm(
            &ctx,
            &name.name,
            commands::WarmArgs {
                keys,
                redis,
                redis_cluster,
                pattern,
                file,
                save_hot,
            },
        ),
        Command::Status { name, json, check } => commands::status(&ctx, &name.name, json, check),
        Command::Load(args) => load_cmd::run(&ctx, &args),
        Command::Trace(cmd) => trace_cmd::run(&ctx, &cmd),
        Command::Simulate(args) => simulate::run(&ctx.dir, &args).map(|()| ExitCode::SUCCESS),
        Command::Bench(args) => bench::run(&ctx.dir, &args),
        Command::BenchWorker(args) => bench::worker(&ctx.dir, &args),
    };
    match result {
        Ok(code) => code,
        Err(e) if commands::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("strata: {}", commands::describe(&e));
            ExitCode::from(3)
        }
    }
}
