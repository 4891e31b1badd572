//! `strata start | stop` and the server lines of `strata status`.
//!
//! A running server holds an exclusive lock on `strata-server.NAME.lock`
//! in the segment directory: the kernel drops it the moment the process
//! dies, so "is a server running" never trusts a stale PID. Next to it,
//! `strata-server.NAME.json` says where it listens and, refreshed every
//! second, its clients and ops/s.

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};
use std::time::{Duration, Instant, SystemTime};
use strata::{Cache, WritePolicy};

/// How long `start` waits for the server to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop` waits for it to drain and exit.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(clap::ValueEnum, Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Write_ {
    Through,
    Back,
    None,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// The options of `strata start`; each may also come from `--config`.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct StartArgs {
    /// Name of the cache segment [default: default].
    #[arg(long, short = 'n', env = "STRATA_NAME", value_parser = crate::parse_name)]
    pub name: Option<String>,
    /// Size of the segment if it is created [default: 1GiB].
    #[arg(long, short = 'm', value_parser = crate::parse_memory)]
    pub memory: Option<u64>,
    /// Eviction policy if the segment is created: wtinylfu, s3fifo, lru,
    /// lfu, fifo or none [default: wtinylfu].
    #[arg(long, value_parser = crate::parse_policy)]
    pub policy: Option<strata_shm::Policy>,
    /// TCP port [default: 6380].
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Address to listen on [default: 127.0.0.1]. Any other address needs
    /// --requirepass (protected mode).
    #[arg(long)]
    pub bind: Option<String>,
    /// Upstream Redis for misses and writes: redis://[user:pass@]host:port/db.
    #[arg(long, conflicts_with = "redis_cluster")]
    pub redis: Option<String>,
    /// Upstream Redis Cluster, by any of its nodes.
    #[arg(long, num_args = 1..)]
    pub redis_cluster: Vec<String>,
    /// How writes reach the upstream [default: through].
    #[arg(long, value_enum)]
    pub write: Option<Write_>,
    /// Password clients must give (AUTH).
    #[arg(
        long,
        env = "STRATA_REQUIREPASS",
        hide_env_values = true,
        conflicts_with = "requirepass_file"
    )]
    pub requirepass: Option<String>,
    /// Read the password from this file (its first line).
    #[arg(long)]
    pub requirepass_file: Option<PathBuf>,
    /// Serve Prometheus metrics on http://BIND:PORT/metrics [default: off].
    #[arg(long)]
    pub metrics_port: Option<u16>,
    /// Most clients connected at once [default: 10000].
    #[arg(long)]
    pub maxclients: Option<u64>,
    /// Close clients idle this many seconds [default: 0, never].
    #[arg(long)]
    pub timeout: Option<u64>,
    /// Worker threads [default: the number of CPUs].
    #[arg(long)]
    pub threads: Option<usize>,
    /// A TOML file with any of these options (names with underscores);
    /// options given on the command line win.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where the server logs when it runs in the background
    /// [default: $XDG_STATE_HOME/strata/NAME.log].
    #[arg(long)]
    pub log_file: Option<PathBuf>,
    /// Log lines as text or as JSON objects [default: text].
    #[arg(long, value_enum)]
    pub log_format: Option<LogFormat>,
    /// Stay attached and log to standard error (for systemd, containers).
    #[arg(long)]
    pub foreground: bool,
}

/// The same options, from a TOML file.
#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    name: Option<String>,
    memory: Option<String>,
    policy: Option<String>,
    port: Option<u16>,
    bind: Option<String>,
    redis: Option<String>,
    redis_cluster: Option<Vec<String>>,
    write: Option<Write_>,
    requirepass: Option<String>,
    requirepass_file: Option<PathBuf>,
    metrics_port: Option<u16>,
    maxclients: Option<u64>,
    timeout: Option<u64>,
    threads: Option<usize>,
    log_file: Option<PathBuf>,
    log_format: Option<LogFormat>,
}

impl StartArgs {
    /// Fills what the command line left out from the config file.
    fn merged(mut self) -> Result<StartArgs> {
        let Some(path) = self.config.clone() else {
            return Ok(self);
        };
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("cannot read the config file {}", path.display()))?;
        let f: FileConfig = toml::from_str(&text)
            .with_context(|| format!("invalid config file {}", path.display()))?;
        if let Some(n) = &f.name {
            crate::parse_name(n).map_err(|e| anyhow::anyhow!("{}: name: {e}", path.display()))?;
        }
        let memory = match &f.memory {
            Some(m) => Some(
                crate::parse_memory(m)
                    .map_err(|e| anyhow::anyhow!("{}: memory: {e}", path.display()))?,
            ),
            None => None,
        };
        let policy = match &f.policy {
            Some(p) => Some(
                crate::parse_policy(p)
                    .map_err(|e| anyhow::anyhow!("{}: policy: {e}", path.display()))?,
            ),
            None => None,
        };
        self.name = self.name.or(f.name);
        self.memory = self.memory.or(memory);
        self.policy = self.policy.or(policy);
        self.port = self.port.or(f.port);
        self.bind = self.bind.or(f.bind);
        if self.redis.is_none() && self.redis_cluster.is_empty() {
            self.redis = f.redis;
            self.redis_cluster = f.redis_cluster.unwrap_or_default();
        }
        self.write = self.write.or(f.write);
        if self.requirepass.is_none() && self.requirepass_file.is_none() {
            self.requirepass = f.requirepass;
            self.requirepass_file = f.requirepass_file;
        }
        self.metrics_port = self.metrics_port.or(f.metrics_port);
        self.maxclients = self.maxclients.or(f.maxclients);
        self.timeout = self.timeout.or(f.timeout);
        self.threads = self.threads.or(f.threads);
        self.log_file = self.log_file.or(f.log_file);
        self.log_format = self.log_format.or(f.log_format);
        Ok(self)
    }

    fn name(&self) -> &str {
        self.name.as_deref().unwrap_or("default")
    }

    fn password(&self) -> Result<Option<String>> {
        if let Some(p) = &self.requirepass_file {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the password file {}", p.display()))?;
            let line = text.lines().next().unwrap_or("").trim().to_string();
            if line.is_empty() {
                bail!("the password file {} is empty", p.display());
            }
            return Ok(Some(line));
        }
        Ok(self.requirepass.clone().filter(|p| !p.is_empty()))
    }

    fn server_config(&self) -> Result<strata_server::Config> {
        let mut c = strata_server::Config {
            requirepass: self.password()?,
            ..Default::default()
        };
        if let Some(b) = &self.bind {
            c.bind = b.clone();
        }
        c.port = self.port.unwrap_or(strata_server::DEFAULT_PORT);
        if let Some(m) = self.maxclients {
            c.maxclients = m;
        }
        if let Some(t) = self.timeout {
            c.timeout = Duration::from_secs(t);
        }
        Ok(c)
    }

    /// The same options as arguments, for the background process.
    fn to_args(&self) -> Vec<String> {
        let mut a = vec!["start".to_string(), "--foreground".into()];
        let mut opt = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                a.push(k.into());
                a.push(v);
            }
        };
        opt("--name", self.name.clone());
        opt("--memory", self.memory.map(|m| m.to_string()));
        opt("--policy", self.policy.map(|p| p.to_string()));
        opt("--port", self.port.map(|p| p.to_string()));
        opt("--bind", self.bind.clone());
        opt("--redis", self.redis.clone());
        opt(
            "--write",
            self.write.map(|w| format!("{w:?}").to_lowercase()),
        );
        opt(
            "--requirepass-file",
            self.requirepass_file
                .as_ref()
                .map(|p| p.display().to_string()),
        );
        opt("--metrics-port", self.metrics_port.map(|p| p.to_string()));
        opt("--maxclients", self.maxclients.map(|p| p.to_string()));
        opt("--timeout", self.timeout.map(|p| p.to_string()));
        opt("--threads", self.threads.map(|p| p.to_string()));
        opt(
            "--log-format",
            self.log_format.map(|f| format!("{f:?}").to_lowercase()),
        );
        if !self.redis_cluster.is_empty() {
            a.push("--redis-cluster".into());
            a.extend(self.redis_cluster.iter().cloned());
        }
        a
    }
}

/// What a running server says of itself, in `strata-server.NAME.json`.
#[derive(Serialize, Deserialize, Debug, Clone)]
pub struct ServerState {
    pub pid: u32,
    pub addr: String,
    pub port: u16,
    pub log: Option<String>,
    pub metrics: Option<String>,
    pub started_unix: u64,
    pub clients: usize,
    pub ops_per_sec: u64,
    pub total_commands: u64,
}

fn state_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("strata-server.{name}.json"))
}

fn lock_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("strata-server.{name}.lock"))
}

fn default_log(name: &str) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("strata").join(format!("{name}.log"))
}

/// Takes the server lock of `name`; None if a live server holds it.
fn take_lock(dir: &Path, name: &str) -> Result<Option<File>> {
    let path = lock_path(dir, name);
    let f = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match rustix::fs::flock(&f, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(f)),
        Err(rustix::io::Errno::WOULDBLOCK) => Ok(None),
        Err(e) => {
            Err(std::io::Error::from(e)).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// The running server of `name`, if one is alive.
pub fn running(dir: &Path, name: &str) -> Option<ServerState> {
    if !lock_path(dir, name).exists() {
        return None;
    }
    // A lock we can take means no server holds it.
    if take_lock(dir, name).ok()?.is_some() {
        return None;
    }
    let text = std::fs::read_to_string(state_path(dir, name)).ok()?;
    serde_json::from_str(&text).ok()
}

fn write_state(dir: &Path, name: &str, s: &ServerState) -> std::io::Result<()> {
    let path = state_path(dir, name);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_vec(s).map_err(std::io::Error::other)?)?;
    std::fs::rename(tmp, path)
}

pub fn start(ctx: &crate::commands::Ctx, args: StartArgs) -> Result<ExitCode> {
    let args = args.merged()?;
    let name = args.name().to_string();
    if let Some(s) = running(&ctx.dir, &name) {
        bail!(
            "a server for cache {name:?} is already running (pid {}, listening on {})",
            s.pid,
            s.addr
        );
    }
    // Refuse what the background process would refuse, here, where the
    // user sees it.
    let cfg = args.server_config()?;
    if !is_loopback(&cfg.bind) && cfg.requirepass.is_none() {
        bail!(
            "refusing to listen on {} without a password (protected mode): give --requirepass or --requirepass-file, or bind 127.0.0.1",
            cfg.bind
        );
    }
    if args.foreground {
        return foreground(ctx, args);
    }
    let log = args.log_file.clone().unwrap_or_else(|| default_log(&name));
    if let Some(parent) = log.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create the log directory {}", parent.display()))?;
    }
    let log_file = File::options()
        .create(true)
        .append(true)
        .open(&log)
        .with_context(|| format!("cannot open the log file {}", log.display()))?;
    let _ = std::fs::remove_file(state_path(&ctx.dir, &name));
    let exe = std::env::current_exe().context("cannot find the strata executable")?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("--dir").arg(&ctx.dir);
    if ctx.trust_foreign {
        cmd.arg("--trust-foreign");
    }
    if let Some(p) = &args.requirepass {
        // Through the environment, which only this user can read, rather
        // than the command line, which `ps` shows everyone.
        cmd.env("STRATA_REQUIREPASS", p);
    }
    let mut child = cmd
        .args(args.to_args())
        .arg("--log-file")
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(log_file.try_clone()?)
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .context("cannot start the server process")?;
    let began = Instant::now();
    loop {
        if let Some(s) = running(&ctx.dir, &name).filter(|s| s.pid == child.id()) {
            let mut out = std::io::stdout().lock();
            writeln!(
                out,
                "strata: serving cache {name:?} on {} (pid {}); logs in {}",
                s.addr,
                s.pid,
                log.display()
            )?;
            if let Some(m) = &s.metrics {
                writeln!(out, "metrics on http://{m}/metrics")?;
            }
            writeln!(out, "stop it with `strata stop -n {name}`")?;
            return Ok(ExitCode::SUCCESS);
        }
        if let Some(status) = child.try_wait()? {
            let tail = log_tail(&log, 5);
            bail!("the server exited ({status}) before accepting connections:\n{tail}");
        }
        if began.elapsed() > READY_TIMEOUT {
            let _ = child.kill();
            bail!(
                "the server did not accept connections within {READY_TIMEOUT:?}; see {}",
                log.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn log_tail(path: &Path, n: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn is_loopback(bind: &str) -> bool {
    match bind.parse::<std::net::IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bind == "localhost",
    }
}

fn init_logging(format: LogFormat) {
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

/// Runs the server in this process until SIGTERM, SIGINT or `strata stop`.
fn foreground(ctx: &crate::commands::Ctx, args: StartArgs) -> Result<ExitCode> {
    init_logging(args.log_format.unwrap_or(LogFormat::Text));
    let name = args.name().to_string();
    let Some(lock) = take_lock(&ctx.dir, &name)? else {
        bail!("a server for cache {name:?} is already running");
    };
    let cfg = args.server_config()?;
    let mut seg_opts = strata::SegmentOptions::default()
        .dir(&ctx.dir)
        .trust_foreign(ctx.trust_foreign);
    if let Some(p) = args.policy {
        seg_opts = seg_opts.policy(p);
    }
    let mut b = Cache::builder(&name)
        .segment_options(seg_opts)
        .memory(args.memory.unwrap_or(crate::commands::DEFAULT_MEMORY));
    if let Some(url) = &args.redis {
        b = b.redis(url);
    }
    if !args.redis_cluster.is_empty() {
        b = b.redis_cluster(args.redis_cluster.clone());
    }
    let upstream = args.redis.is_some() || !args.redis_cluster.is_empty();
    match (upstream, args.write) {
        (true, w) => {
            b = b.write_policy(match w.unwrap_or(Write_::Through) {
                Write_::Through => WritePolicy::Through,
                Write_::Back => WritePolicy::Back,
                Write_::None => WritePolicy::None,
            })
        }
        (false, Some(Write_::Through | Write_::Back)) => {
            bail!("--write through and --write back need an upstream: give --redis or --redis-cluster")
        }
        (false, _) => {}
    }
    let cache = b
        .build()
        .with_context(|| format!("cannot open cache {name:?}"))?;
    let threads = args
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
        .max(1);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let dir = ctx.dir.clone();
    let state_name = name.clone();
    let result = rt.block_on(async move {
        let server = strata_server::Server::bind(cache, cfg.clone()).await?;
        let handle = server.handle();
        let addr = server.local_addr();
        let metrics = match args.metrics_port {
            Some(p) => {
                let l = tokio::net::TcpListener::bind((cfg.bind.as_str(), p))
                    .await
                    .with_context(|| format!("cannot listen for metrics on {}:{p}", cfg.bind))?;
                let at = l.local_addr()?;
                tokio::spawn(strata_server::serve_metrics(handle.clone(), l));
                Some(at.to_string())
            }
            None => None,
        };
        let started_unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let state = ServerState {
            pid: std::process::id(),
            addr: addr.to_string(),
            port: addr.port(),
            log: args.log_file.as_ref().map(|p| p.display().to_string()),
            metrics: metrics.clone(),
            started_unix,
            clients: 0,
            ops_per_sec: 0,
            total_commands: 0,
        };
        write_state(&dir, &name, &state)?;
        tracing::info!(addr = %addr, cache = %name, metrics = ?metrics, "accepting connections");
        let reporter = {
            let (handle, dir, name, mut state) = (handle.clone(), dir.clone(), name.clone(), state);
            tokio::spawn(async move {
                let mut last = handle.total_commands();
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let total = handle.total_commands();
                    state.clients = handle.clients();
                    state.ops_per_sec = total.saturating_sub(last);
                    state.total_commands = total;
                    last = total;
                    let _ = write_state(&dir, &name, &state);
                }
            })
        };
        let stop = async {
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler");
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: shutting down"),
            }
        };
        let r = server.run(stop).await;
        reporter.abort();
        tracing::info!("stopped");
        r.map_err(anyhow::Error::from)
    });
    let _ = std::fs::remove_file(state_path(&ctx.dir, &state_name));
    drop(lock);
    result?;
    Ok(ExitCode::SUCCESS)
}

pub fn stop(ctx: &crate::commands::Ctx, name: &str) -> Result<ExitCode> {
    let Some(s) = running(&ctx.dir, name) else {
        eprintln!("strata: no server is running for cache {name:?}");
        return Ok(ExitCode::from(crate::commands::NOT_FOUND));
    };
    let pid =
        rustix::process::Pid::from_raw(s.pid as i32).context("invalid pid in the state file")?;
    rustix::process::kill_process(pid, rustix::process::Signal::TERM)
        .map_err(std::io::Error::from)
        .with_context(|| format!("cannot signal the server (pid {})", s.pid))?;
    let began = Instant::now();
    while running(&ctx.dir, name).is_some() {
        if began.elapsed() > STOP_TIMEOUT {
            bail!(
                "the server (pid {}) is still draining after {STOP_TIMEOUT:?}",
                s.pid
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writeln!(
        std::io::stdout(),
        "strata: stopped the server of cache {name:?} (pid {})",
        s.pid
    )?;
    Ok(ExitCode::SUCCESS)
}

/// The server's part of `strata status`, as JSON.
pub fn status_json(dir: &Path, name: &str) -> serde_json::Value {
    match running(dir, name) {
        Some(s) => {
            let uptime = SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs())
                .saturating_sub(s.started_unix);
            serde_json::json!({
                "pid": s.pid, "addr": s.addr, "port": s.port, "clients": s.clients,
                "ops_per_sec": s.ops_per_sec, "total_commands": s.total_commands,
                "uptime_secs": uptime, "log": s.log, "metrics": s.metrics,
            })
        }
        None => serde_json::Value::Null,
    }
}
