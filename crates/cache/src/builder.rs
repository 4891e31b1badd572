use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::invalidation::Invalidation;
use crate::l1::LocalTier;
use crate::policy::WritePolicy;
use crate::write_back::{WriteBack, WriteBackConfig};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;
use strata_shm::{Segment, SegmentOptions};
use strata_tiers::{L1Config, RedisConfig, RedisTier, Tier};

/// Builds a [`Cache`]: L0's options, then the tiers behind it.
#[derive(Debug)]
pub struct CacheBuilder {
    name: String,
    l0: SegmentOptions,
    redis: Option<RedisConfig>,
    policy: Option<WritePolicy>,
    default_ttl: Option<Duration>,
    write_back: WriteBackConfig,
    create: bool,
    channel: Option<String>,
    invalidation: bool,
    l1: Option<L1Config>,
}

impl CacheBuilder {
    pub(crate) fn new(name: &str) -> Self {
        CacheBuilder {
            name: name.to_string(),
            l0: SegmentOptions::default(),
            redis: None,
            policy: None,
            default_ttl: None,
            write_back: WriteBackConfig::default(),
            create: true,
            channel: None,
            invalidation: true,
            l1: None,
        }
    }

    /// L0's options (size, directory, clock, huge pages, ...).
    pub fn segment_options(mut self, opts: SegmentOptions) -> Self {
        self.l0 = opts;
        self
    }

    /// L0's size in bytes (when it is created).
    pub fn memory(mut self, bytes: u64) -> Self {
        self.l0 = self.l0.memory(bytes);
        self
    }

    /// Attach only: fail if L0 does not exist yet.
    pub fn create(mut self, create: bool) -> Self {
        self.create = create;
        self
    }

    /// Redis behind L0: `redis://[user:password@]host:port/db`.
    pub fn redis(mut self, url: &str) -> Self {
        self.redis = Some(RedisConfig::single(url));
        self
    }

    /// A Redis Cluster behind L0, from any of its nodes.
    pub fn redis_cluster<S: Into<String>>(mut self, urls: impl IntoIterator<Item = S>) -> Self {
        self.redis = Some(RedisConfig::cluster(urls));
        self
    }

    /// Redis with every knob (timeouts, circuit breaker).
    pub fn redis_config(mut self, cfg: RedisConfig) -> Self {
        self.redis = Some(cfg);
        self
    }

    /// Write-through by default when Redis is configured.
    pub fn write_policy(mut self, policy: WritePolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The TTL of writes that give none.
    pub fn default_ttl(mut self, ttl: Duration) -> Self {
        self.default_ttl = Some(ttl);
        self
    }

    /// The Redis pub/sub channel of cross-machine invalidation; machines
    /// that share it invalidate each other's L0. Default:
    /// `strata:inval:<name>`.
    pub fn invalidation_channel(mut self, channel: &str) -> Self {
        self.channel = Some(channel.to_string());
        self
    }

    /// Cross-machine invalidation (on by default with Redis).
    pub fn invalidation(mut self, on: bool) -> Self {
        self.invalidation = on;
        self
    }

    /// Adds L1, this process's own tier of `bytes`, with its default
    /// policy: it keeps what L0 evicts through this process's writes or
    /// refuses to admit, and hands it back (promoted into L0 when L0's
    /// admission takes it) on an L0 miss before Redis is asked.
    pub fn l1(self, bytes: u64) -> Self {
        self.l1_config(L1Config::new(bytes))
    }

    /// Adds L1 with a policy and sharding of your choice.
    pub fn l1_config(mut self, cfg: L1Config) -> Self {
        self.l1 = Some(cfg);
        self
    }

    pub fn write_back(mut self, cfg: WriteBackConfig) -> Self {
        self.write_back = cfg;
        self
    }

    pub fn build(self) -> Result<Cache> {
        if let Some(ttl) = self.default_ttl {
            strata_shm::check_ttl(ttl)?;
        }
        let redis: Option<Arc<RedisTier>> = match self.redis {
            Some(cfg) => Some(Arc::new(RedisTier::new(cfg)?)),
            None => None,
        };
        let policy = match (self.policy, &redis) {
            (Some(WritePolicy::Back), None) | (Some(WritePolicy::Through), None) => {
                return Err(Error::InvalidConfig(
                    "write-through and write-back need Redis (.redis(url))".into(),
                ))
            }
            (Some(p), _) => p,
            (None, Some(_)) => WritePolicy::Through,
            (None, None) => WritePolicy::None,
        };
        // L0's evictions by this process's writes demote into L1, once
        // L1 exists (it needs the segment first).
        let holder: Arc<OnceLock<Weak<LocalTier>>> = Arc::new(OnceLock::new());
        let mut l0 = self.l0.clone();
        if self.l1.is_some() {
            let user = l0.on_evict.take();
            let clock = l0.clock.clone();
            let h = holder.clone();
            l0.on_evict = Some(Arc::new(move |e| {
                if let Some(user) = &user {
                    user(e);
                }
                if let Some(t) = h.get().and_then(Weak::upgrade) {
                    t.demote(e, clock.now_ms());
                }
            }));
        }
        let seg = if self.create {
            Segment::open_or_create(&self.name, &l0)?
        } else {
            Segment::open(&self.name, &l0)?
        };
        let l1 = match &self.l1 {
            Some(cfg) => {
                let t = LocalTier::new(&seg, cfg)?;
                let _ = holder.set(Arc::downgrade(&t));
                Some(t)
            }
            None => None,
        };
        let inval = match &redis {
            Some(r) if self.invalidation => {
                let channel = self
                    .channel
                    .unwrap_or_else(|| format!("strata:inval:{}", self.name));
                Some(Invalidation::new(
                    seg.clone(),
                    r.clone(),
                    channel.into_bytes(),
                ))
            }
            _ => None,
        };
        let write_back = match (&redis, policy) {
            (Some(r), WritePolicy::Back) => Some(WriteBack::start(
                r.clone() as Arc<dyn Tier>,
                self.write_back,
                inval.clone(),
            )?),
            _ => None,
        };
        Ok(Cache::from_parts(
            seg,
            redis,
            inval,
            policy,
            self.default_ttl,
            write_back,
            l1,
        ))
    }
}
