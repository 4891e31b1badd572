//! L2: Redis or Redis Cluster, through redis-rs. The tier is synchronous
//! at its edge and runs its I/O on a small tokio runtime of its own, so
//! Python threads and plain Rust callers block only the calling thread.
//! One multiplexed connection serves every thread of a process (a
//! `ConnectionManager`, which reconnects on its own; on a cluster,
//! redis-rs's cluster connection, which follows MOVED and ASK and
//! failovers). Every request has a timeout, and a circuit breaker makes a
//! failing Redis cost a request nothing but a check.
//!
//! What Redis holds: a value's key holds exactly its bytes, so any client
//! reads what strata wrote and strata reads what any client wrote. A type
//! tag (dtype and shape) goes to a companion key ([`crate::tag_key`]),
//! written and read in the same round trip as the value, with the same
//! TTL.

use crate::breaker::{Breaker, BreakerState};
use crate::error::{Error, Result};
use crate::stats::{TierStats, TierStatsSnapshot};
use crate::tag_key::tag_key;
use crate::{Fetched, Put, Tier};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::cluster_async::ClusterConnection;
use redis::cluster_routing::Slot;
use redis::{Pipeline, Value};
use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use strata_shm::TypeTag;

/// The largest value Redis stores (its `proto-max-bulk-len` default).
pub const REDIS_MAX_VALUE: usize = 512 * 1024 * 1024;

const TIER: &str = "redis";

/// How to reach Redis, and how patient to be with it.
#[derive(Clone, Debug)]
pub struct RedisConfig {
    /// One URL (`redis://[user:password@]host:port/db`), or a cluster's
    /// seed nodes.
    pub urls: Vec<String>,
    pub cluster: bool,
    /// The longest a request (one round trip, a batch included) may take.
    pub timeout: Duration,
    /// The longest connecting may take.
    pub connect_timeout: Duration,
    /// Failures in a row that open the circuit breaker.
    pub breaker_threshold: u32,
    /// How long an open breaker fails requests before it lets a probe out.
    pub breaker_cool_down: Duration,
}

impl RedisConfig {
    fn new(urls: Vec<String>, cluster: bool) -> Self {
        RedisConfig {
            urls,
            cluster,
            timeout: Duration::from_millis(500),
            connect_timeout: Duration::from_millis(500),
            breaker_threshold: 3,
            breaker_cool_down: Duration::from_secs(1),
        }
    }
    /// A single Redis server (or a replica set's primary).
    pub fn single(url: impl Into<String>) -> Self {
        Self::new(vec![url.into()], false)
    }
    /// A Redis Cluster, from any of its nodes.
    pub fn cluster<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Self {
        Self::new(urls.into_iter().map(Into::into).collect(), true)
    }
    pub fn timeout(mut self, t: Duration) -> Self {
        self.timeout = t;
        self
    }
    pub fn connect_timeout(mut self, t: Duration) -> Self {
        self.connect_timeout = t;
        self
    }
    pub fn breaker(mut self, threshold: u32, cool_down: Duration) -> Self {
        self.breaker_threshold = threshold;
        self.breaker_cool_down = cool_down;
        self
    }
}

#[derive(Clone)]
enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    async fn query(&mut self, p: &Pipeline) -> redis::RedisResult<Vec<Value>> {
        match self {
            Conn::Single(c) => p.query_async(c).await,
            Conn::Cluster(c) => p.query_async(c).await,
        }
    }
}

// Boxed, both: with TLS a client carries its certificates and grows.
enum Clients {
    Single(Box<redis::Client>),
    Cluster(Box<redis::cluster::ClusterClient>),
}

/// The runtime and connection of one process. A forked child cannot use
/// its parent's (the runtime's threads stay behind), so it makes its own.
struct Engine {
    fork_gen: u64,
    rt: tokio::runtime::Runtime,
    /// The connection, made on first use and dropped after a failure, so
    /// that the next request connects afresh: a cluster connection learns
    /// the slot map again (redis-rs keeps trying a dead primary's address
    /// otherwise, and never sees its replica promoted).
    conn: Mutex<Option<Conn>>,
}

pub struct RedisTier {
    cfg: RedisConfig,
    clients: Clients,
    engine: Mutex<Option<Arc<Engine>>>,
    breaker: Breaker,
    stats: TierStats,
}

impl std::fmt::Debug for RedisTier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisTier").field("cfg", &self.cfg).finish()
    }
}

fn upstream(e: impl std::fmt::Display) -> Error {
    Error::Upstream {
        tier: TIER,
        reason: e.to_string(),
    }
}

/// One group of commands that goes to one node in one round trip, and
/// where each answer belongs.
struct Batch<T> {
    pipe: Pipeline,
    slots: Vec<T>,
}

impl RedisTier {
    /// Checks the configuration; connects on first use, so that a cache
    /// can start (and serve what it holds) while Redis is down.
    pub fn new(cfg: RedisConfig) -> Result<Self> {
        let bad = |reason: String| Error::InvalidConfig { tier: TIER, reason };
        if cfg.urls.is_empty() {
            return Err(bad("no URL given".into()));
        }
        let clients = if cfg.cluster {
            let b = redis::cluster::ClusterClient::builder(cfg.urls.clone())
                .connection_timeout(cfg.connect_timeout)
                .response_timeout(cfg.timeout)
                .retries(2);
            Clients::Cluster(Box::new(b.build().map_err(|e| bad(e.to_string()))?))
        } else {
            if cfg.urls.len() != 1 {
                return Err(bad(
                    "a single server takes one URL; use a cluster for several".into(),
                ));
            }
            Clients::Single(Box::new(
                redis::Client::open(cfg.urls[0].as_str()).map_err(|e| bad(e.to_string()))?,
            ))
        };
        Ok(RedisTier {
            breaker: Breaker::new(cfg.breaker_threshold, cfg.breaker_cool_down),
            cfg,
            clients,
            engine: Mutex::new(None),
            stats: TierStats::default(),
        })
    }

    pub fn config(&self) -> &RedisConfig {
        &self.cfg
    }

    pub fn breaker_state(&self) -> BreakerState {
        self.breaker.state()
    }

    fn engine(&self) -> Result<Arc<Engine>> {
        let gen = strata_shm::fork_generation();
        let mut slot = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = slot.as_ref() {
            if e.fork_gen == gen {
                return Ok(e.clone());
            }
            // Inherited across a fork: its threads are the parent's. Never
            // drop it here (dropping waits for those threads).
            if let Some(old) = slot.take() {
                std::mem::forget(old);
            }
        }
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("strata-redis")
            .enable_all()
            .build()
            .map_err(upstream)?;
        let e = Arc::new(Engine {
            fork_gen: gen,
            rt,
            conn: Mutex::new(None),
        });
        *slot = Some(e.clone());
        Ok(e)
    }

    async fn connect(&self) -> redis::RedisResult<Conn> {
        match &self.clients {
            Clients::Single(c) => {
                let cfg = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.cfg.connect_timeout))
                    .set_response_timeout(Some(self.cfg.timeout))
                    .set_number_of_retries(1);
                Ok(Conn::Single(
                    ConnectionManager::new_with_config((**c).clone(), cfg).await?,
                ))
            }
            Clients::Cluster(c) => Ok(Conn::Cluster(c.get_async_connection().await?)),
        }
    }

    /// Runs one request (any number of round trips in parallel) under the
    /// breaker and the timeout, and counts it.
    fn run<T, F, Fut>(&self, f: F) -> Result<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        if let Err(r) = self.breaker.admit() {
            self.stats.errors.fetch_add(1, Relaxed);
            return Err(Error::CircuitOpen {
                tier: TIER,
                reason: r.reason,
                retry_in: r.retry_in,
            });
        }
        let engine = self.engine()?;
        let start = Instant::now();
        let limit = self.cfg.timeout + self.cfg.connect_timeout;
        let held = engine
            .conn
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let out = engine.rt.block_on(async {
            tokio::time::timeout(limit, async {
                let conn = match held {
                    Some(c) => c,
                    None => {
                        let c = self.connect().await?;
                        *engine.conn.lock().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
                        c
                    }
                };
                f(conn).await
            })
            .await
        });
        self.stats.record_latency(start.elapsed());
        let res = match out {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(upstream(e)),
            Err(_) => Err(Error::Timeout {
                tier: TIER,
                after: limit,
            }),
        };
        match &res {
            Ok(_) => self.breaker.success(),
            Err(e) => {
                self.stats.errors.fetch_add(1, Relaxed);
                self.breaker.failure(&e.to_string());
                if self.cfg.cluster {
                    *engine.conn.lock().unwrap_or_else(|e| e.into_inner()) = None;
                }
            }
        }
        res
    }

    /// Every key matching `pattern` (a Redis glob), through SCAN, handed
    /// to `on_keys` a batch at a time (about `count` keys). On a cluster,
    /// each primary is scanned in turn, since SCAN sees one node's keys.
    pub fn scan(
        &self,
        pattern: &str,
        count: usize,
        on_keys: &mut dyn FnMut(Vec<Vec<u8>>) -> Result<()>,
    ) -> Result<()> {
        let nodes: Vec<Option<(String, u16)>> = if self.cfg.cluster {
            self.primaries()?.into_iter().map(Some).collect()
        } else {
            vec![None]
        };
        for node in nodes {
            let mut cursor = 0u64;
            loop {
                let cmd = redis::cmd("SCAN")
                    .arg(cursor)
                    .arg("MATCH")
                    .arg(pattern)
                    .arg("COUNT")
                    .arg(count)
                    .clone();
                let answer = match &node {
                    None => self
                        .send(self.batches(vec![(Vec::new(), cmd, ())]))?
                        .pop()
                        .map(|(_, v)| v),
                    Some((host, port)) => Some(self.on_node(host, *port, cmd)?),
                };
                let Some(Value::Array(parts)) = answer else {
                    return Err(upstream("SCAN answered something else"));
                };
                let mut it = parts.into_iter();
                cursor = it
                    .next()
                    .and_then(bytes_of)
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                if let Some(Value::Array(ks)) = it.next() {
                    on_keys(ks.into_iter().filter_map(bytes_of).collect())?;
                }
                if cursor == 0 {
                    break;
                }
            }
        }
        Ok(())
    }

    /// The (host, port) of each live primary of the cluster.
    fn primaries(&self) -> Result<Vec<(String, u16)>> {
        let cmd = redis::cmd("CLUSTER").arg("NODES").clone();
        let answer = self.send(self.batches(vec![(Vec::new(), cmd, ())]))?.pop();
        let text = match answer.map(|(_, v)| v) {
            Some(Value::VerbatimString { text, .. }) => text,
            Some(v) => bytes_of(v)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default(),
            None => String::new(),
        };
        Ok(text
            .lines()
            .filter(|l| {
                let flags = l.split_whitespace().nth(2).unwrap_or("");
                flags.contains("master") && !flags.contains("fail")
            })
            .filter_map(|l| l.split_whitespace().nth(1))
            .filter_map(|addr| {
                let hostport = addr.split('@').next()?;
                let (host, port) = hostport.rsplit_once(':')?;
                Some((host.to_string(), port.parse().ok()?))
            })
            .collect())
    }

    /// Runs one command on the node at host:port, with the credentials of
    /// the configured URL.
    fn on_node(&self, host: &str, port: u16, cmd: redis::Cmd) -> Result<Value> {
        use redis::IntoConnectionInfo;
        let info = self.cfg.urls[0]
            .as_str()
            .into_connection_info()
            .map_err(upstream)?
            .set_addr(redis::ConnectionAddr::Tcp(host.to_string(), port));
        let client = redis::Client::open(info).map_err(upstream)?;
        self.run(|_| async move {
            let mut c = client.get_multiplexed_async_connection().await?;
            cmd.query_async::<Value>(&mut c).await
        })
    }

    /// Publishes `messages` on `channel`, in one round trip.
    pub fn publish(&self, channel: &[u8], messages: &[Vec<u8>]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let cmds = messages
            .iter()
            .map(|m| {
                (
                    channel.to_vec(),
                    redis::cmd("PUBLISH").arg(channel).arg(m).clone(),
                    (),
                )
            })
            .collect();
        self.send(self.batches(cmds)).map(|_| ())
    }

    /// Stores `items` and publishes `messages` on `channel`, in one round
    /// trip per node: a write and the invalidation it sends other machines.
    pub fn put_and_publish(
        &self,
        items: &[Put<'_>],
        channel: &[u8],
        messages: &[Vec<u8>],
    ) -> Result<()> {
        let mut cmds = self.put_commands(items)?;
        cmds.extend(messages.iter().map(|m| {
            (
                channel.to_vec(),
                redis::cmd("PUBLISH").arg(channel).arg(m).clone(),
                (),
            )
        }));
        self.send(self.batches(cmds)).map(|_| ())
    }

    /// Subscribes to `channel` and hands every message to `on_message`
    /// until `stop` is set (Ok) or the connection is lost (Err); `ready`
    /// is set once the subscription stands. Runs on the calling thread. On a cluster, any node serves: Redis Cluster
    /// broadcasts PUBLISH to every node.
    pub fn subscribe(
        &self,
        channel: &[u8],
        stop: &std::sync::atomic::AtomicBool,
        ready: &std::sync::atomic::AtomicBool,
        on_message: &mut (dyn FnMut(&[u8]) + Send),
    ) -> Result<()> {
        use futures_util::StreamExt;
        let engine = self.engine()?;
        engine.rt.block_on(async {
            let mut ps = None;
            let mut last = None;
            for url in &self.cfg.urls {
                let client = redis::Client::open(url.as_str()).map_err(upstream)?;
                match tokio::time::timeout(self.cfg.connect_timeout, client.get_async_pubsub())
                    .await
                {
                    Ok(Ok(p)) => {
                        ps = Some(p);
                        break;
                    }
                    Ok(Err(e)) => last = Some(upstream(e)),
                    Err(_) => {
                        last = Some(Error::Timeout {
                            tier: TIER,
                            after: self.cfg.connect_timeout,
                        })
                    }
                }
            }
            let Some(mut ps) = ps else {
                return Err(last.unwrap_or_else(|| upstream("no URL to subscribe through")));
            };
            ps.subscribe(channel).await.map_err(upstream)?;
            ready.store(true, Relaxed);
            let mut stream = ps.on_message();
            loop {
                if stop.load(Relaxed) {
                    return Ok(());
                }
                match tokio::time::timeout(Duration::from_millis(100), stream.next()).await {
                    Err(_) => continue,
                    Ok(Some(msg)) => on_message(msg.get_payload_bytes()),
                    Ok(None) => return Err(upstream("the subscription's connection closed")),
                }
            }
        })
    }

    /// Sends each batch to its node, all at once, and returns the answers
    /// with their batches' slots.
    fn send<T: Send + 'static>(&self, batches: Vec<Batch<T>>) -> Result<Vec<(T, Value)>> {
        self.run(|conn| async move {
            let futs = batches.into_iter().map(|b| {
                let mut c = conn.clone();
                async move {
                    let answers = c.query(&b.pipe).await?;
                    Ok::<_, redis::RedisError>(b.slots.into_iter().zip(answers).collect::<Vec<_>>())
                }
            });
            let mut out = Vec::new();
            for r in futures_util::future::join_all(futs).await {
                out.extend(r?);
            }
            Ok(out)
        })
    }

    /// The SET commands of `items`, each with its type tag's SET (or DEL).
    fn put_commands(&self, items: &[Put<'_>]) -> Result<Vec<(Vec<u8>, redis::Cmd, ())>> {
        let mut cmds = Vec::with_capacity(items.len() * 2);
        for it in items {
            if it.value.len() > REDIS_MAX_VALUE {
                return Err(Error::ValueTooLarge {
                    tier: TIER,
                    len: it.value.len(),
                    max: REDIS_MAX_VALUE,
                });
            }
            let with_ttl = |c: &mut redis::Cmd| {
                if let Some(ttl) = it.ttl {
                    c.arg("PX").arg(ttl.as_millis().max(1) as u64);
                }
            };
            let mut set = redis::cmd("SET");
            set.arg(it.key).arg(it.value);
            with_ttl(&mut set);
            cmds.push((it.key.to_vec(), set, ()));
            let tk = tag_key(it.key);
            // A value without a tag must not keep an old one's.
            let tag_cmd = match it.tag.and_then(|t| t.encode().ok()) {
                Some(bytes) => {
                    let mut c = redis::cmd("SET");
                    c.arg(&tk).arg(bytes);
                    with_ttl(&mut c);
                    c
                }
                None => redis::cmd("DEL").arg(&tk).clone(),
            };
            cmds.push((tk, tag_cmd, ()));
        }
        Ok(cmds)
    }

    /// Groups commands by the node they go to: one batch on a single
    /// server, one per hash slot on a cluster.
    fn batches<T>(&self, cmds: Vec<(Vec<u8>, redis::Cmd, T)>) -> Vec<Batch<T>> {
        let mut by_slot: HashMap<Option<Slot>, Batch<T>> = HashMap::new();
        for (key, cmd, slot) in cmds {
            let s = self.cfg.cluster.then(|| Slot::for_key(&key));
            let b = by_slot.entry(s).or_insert_with(|| Batch {
                pipe: redis::pipe(),
                slots: Vec::new(),
            });
            b.pipe.add_command(cmd);
            b.slots.push(slot);
        }
        by_slot.into_values().collect()
    }
}

/// Which answers of a lookup a command's reply holds.
enum Part {
    /// An MGET of these keys' values.
    Values(Vec<usize>),
    Ttl(usize),
    /// An MGET of these keys' type tags.
    Tags(Vec<usize>),
}

fn bytes_of(v: Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b),
        Value::SimpleString(s) => Some(s.into_bytes()),
        _ => None,
    }
}

impl Tier for RedisTier {
    fn name(&self) -> &str {
        TIER
    }

    fn get_many(&self, keys: &[&[u8]]) -> Result<Vec<Option<Fetched>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        // Per node (per hash slot on a cluster): one MGET of the values,
        // one MGET of their type tags, and a PTTL per key, pipelined:
        // a few commands more than a plain MGET, not three per key.
        let slot_of = |k: &[u8]| self.cfg.cluster.then(|| Slot::for_key(k));
        let mut value_groups: HashMap<Option<Slot>, Vec<usize>> = HashMap::new();
        let mut tag_groups: HashMap<Option<Slot>, Vec<(usize, Vec<u8>)>> = HashMap::new();
        for (i, &k) in keys.iter().enumerate() {
            value_groups.entry(slot_of(k)).or_default().push(i);
            let tk = tag_key(k);
            tag_groups.entry(slot_of(&tk)).or_default().push((i, tk));
        }
        let mut cmds = Vec::with_capacity(keys.len() + 2 * value_groups.len());
        for idx in value_groups.into_values() {
            let first = keys[idx[0]].to_vec();
            let mut mget = redis::cmd("MGET");
            for &i in &idx {
                mget.arg(keys[i]);
                cmds.push((
                    first.clone(),
                    redis::cmd("PTTL").arg(keys[i]).clone(),
                    Part::Ttl(i),
                ));
            }
            cmds.push((first, mget, Part::Values(idx)));
        }
        for group in tag_groups.into_values() {
            let first = group[0].1.clone();
            let mut mget = redis::cmd("MGET");
            for (_, tk) in &group {
                mget.arg(tk);
            }
            cmds.push((
                first,
                mget,
                Part::Tags(group.into_iter().map(|(i, _)| i).collect()),
            ));
        }
        let answers = self.send(self.batches(cmds))?;
        let mut values: Vec<Option<Vec<u8>>> = vec![None; keys.len()];
        let mut ttls: Vec<Option<Duration>> = vec![None; keys.len()];
        let mut tags: Vec<Option<TypeTag>> = vec![None; keys.len()];
        let items = |v: Value| match v {
            Value::Array(items) => items,
            _ => Vec::new(),
        };
        for (part, v) in answers {
            match part {
                Part::Values(idx) => {
                    for (i, item) in idx.into_iter().zip(items(v)) {
                        values[i] = bytes_of(item);
                    }
                }
                Part::Ttl(i) => {
                    if let Value::Int(ms) = v {
                        ttls[i] = (ms > 0).then(|| Duration::from_millis(ms as u64));
                    }
                }
                Part::Tags(idx) => {
                    for (i, item) in idx.into_iter().zip(items(v)) {
                        tags[i] = bytes_of(item).and_then(|b| TypeTag::decode(&b));
                    }
                }
            }
        }
        let out: Vec<Option<Fetched>> = values
            .into_iter()
            .zip(ttls)
            .zip(tags)
            .map(|((value, ttl), tag)| value.map(|value| Fetched { value, tag, ttl }))
            .collect();
        let hits = out.iter().filter(|f| f.is_some()).count() as u64;
        self.stats.hits.fetch_add(hits, Relaxed);
        self.stats
            .misses
            .fetch_add(out.len() as u64 - hits, Relaxed);
        Ok(out)
    }

    fn put_many(&self, items: &[Put<'_>]) -> Result<()> {
        if items.is_empty() {
            return Ok(());
        }
        let cmds = self.put_commands(items)?;
        self.send(self.batches(cmds)).map(|_| ())
    }

    fn delete_many(&self, keys: &[&[u8]]) -> Result<u64> {
        if keys.is_empty() {
            return Ok(0);
        }
        let mut cmds = Vec::with_capacity(keys.len() * 2);
        for &k in keys {
            cmds.push((k.to_vec(), redis::cmd("DEL").arg(k).clone(), true));
            let tk = tag_key(k);
            cmds.push((tk.clone(), redis::cmd("DEL").arg(tk).clone(), false));
        }
        let answers = self.send(self.batches(cmds))?;
        Ok(answers
            .into_iter()
            .filter(|(is_value, _)| *is_value)
            .map(|(_, v)| match v {
                Value::Int(n) => n.max(0) as u64,
                _ => 0,
            })
            .sum())
    }

    fn expire_many(&self, keys: &[&[u8]], ttl: Option<Duration>) -> Result<u64> {
        let cmd = |k: &[u8]| match ttl {
            Some(t) => redis::cmd("PEXPIRE")
                .arg(k)
                .arg(t.as_millis().max(1) as u64)
                .clone(),
            None => redis::cmd("PERSIST").arg(k).clone(),
        };
        let mut cmds = Vec::with_capacity(keys.len() * 2);
        for &k in keys {
            cmds.push((k.to_vec(), cmd(k), true));
            // The type tag lives as long as its value.
            let tk = tag_key(k);
            cmds.push((tk.clone(), cmd(&tk), false));
        }
        let answers = self.send(self.batches(cmds))?;
        Ok(answers
            .into_iter()
            .filter(|(is_value, v)| *is_value && matches!(v, Value::Int(1)))
            .count() as u64)
    }

    fn incr(&self, key: &[u8]) -> Result<i64> {
        let cmds = vec![(key.to_vec(), redis::cmd("INCR").arg(key).clone(), ())];
        match self.send(self.batches(cmds))?.pop() {
            Some((_, Value::Int(n))) => Ok(n),
            other => Err(upstream(format!("INCR answered {other:?}"))),
        }
    }

    fn stats(&self) -> TierStatsSnapshot {
        self.stats.snapshot(match self.breaker.state() {
            BreakerState::Closed => "closed",
            BreakerState::Open => "open",
            BreakerState::HalfOpen => "half-open",
        })
    }
}

impl Drop for RedisTier {
    fn drop(&mut self) {
        let mut slot = self.engine.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = slot.take() {
            match Arc::try_unwrap(e) {
                // Not from a blocking context's point of view: a runtime
                // may not be dropped inside another one, so let it go in
                // the background.
                Ok(engine) if engine.fork_gen == strata_shm::fork_generation() => {
                    engine.rt.shutdown_background()
                }
                Ok(engine) => std::mem::forget(engine),
                Err(_) => {}
            }
        }
    }
}
