//! The listener: accepting connections within `maxclients`, protected
//! mode, and a graceful shutdown that finishes in-flight commands and
//! drains write-back before the cache closes.

use crate::client::Registry;
use crate::config::{Config, Settings};
use crate::error::{Error, Result};
use crate::pubsub::Broker;
use crate::stats::{CoarseClock, ServerStats};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// How long a shutdown waits for connections to finish their commands.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// What every connection shares.
pub struct Shared {
    pub cache: strata::Cache,
    pub settings: Settings,
    pub stats: ServerStats,
    pub clients: Registry,
    pub broker: Broker,
    pub started: Instant,
    /// EXEC takes it for writing, every other batch for reading, so a
    /// transaction runs with no other client's command in between.
    pub exec_lock: RwLock<()>,
    /// Serialises read-modify-write commands that go through the upstream.
    pub rmw_lock: Mutex<()>,
    pub addr: SocketAddr,
    pub shutdown: watch::Sender<bool>,
    pub clock: CoarseClock,
}

/// A bound server, ready to run.
pub struct Server {
    shared: Arc<Shared>,
    listener: TcpListener,
}

/// A handle to a running server: its figures, and a way to stop it.
#[derive(Clone)]
pub struct ServerHandle {
    shared: Arc<Shared>,
}

impl ServerHandle {
    pub fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
    }
    pub fn clients(&self) -> usize {
        self.shared.clients.len()
    }
    pub fn total_commands(&self) -> u64 {
        self.shared.stats.total_commands()
    }
    pub fn uptime(&self) -> Duration {
        self.shared.started.elapsed()
    }
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }
    /// The Prometheus text of the server's and the cache's figures.
    pub fn render_metrics(&self) -> String {
        crate::metrics::render(&self.shared)
    }
}

fn is_loopback(bind: &str) -> bool {
    match bind.parse::<IpAddr>() {
        Ok(ip) => ip.is_loopback(),
        Err(_) => bind == "localhost",
    }
}

impl Server {
    /// Binds the listener. A non-loopback address without a password is
    /// refused (protected mode).
    pub async fn bind(cache: strata::Cache, config: Config) -> Result<Server> {
        if !is_loopback(&config.bind) && config.requirepass.as_deref().unwrap_or("").is_empty() {
            return Err(Error::ProtectedMode {
                addr: config.bind.clone(),
            });
        }
        if config.maxclients == 0 {
            return Err(Error::InvalidConfig("maxclients must be at least 1".into()));
        }
        let addr = format!("{}:{}", config.bind, config.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| Error::Bind {
                addr: addr.clone(),
                source,
            })?;
        let local = listener.local_addr()?;
        let max_value = cache.segment().max_value_size();
        let (tx, _) = watch::channel(false);
        let shared = Arc::new(Shared {
            settings: Settings::new(&config, max_value, local.port()),
            cache,
            stats: ServerStats::default(),
            clients: Registry::default(),
            broker: Broker::default(),
            started: Instant::now(),
            exec_lock: RwLock::new(()),
            rmw_lock: Mutex::new(()),
            addr: local,
            shutdown: tx,
            clock: CoarseClock::default(),
        });
        Ok(Server { shared, listener })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.addr
    }

    pub fn handle(&self) -> ServerHandle {
        ServerHandle {
            shared: self.shared.clone(),
        }
    }

    /// Serves until `stop` completes or [`ServerHandle::shutdown`] is
    /// called; then stops accepting, lets connections finish what they
    /// were doing, and closes the cache (draining write-back).
    pub async fn run(self, stop: impl Future<Output = ()>) -> Result<()> {
        let Server { shared, listener } = self;
        let mut down = shared.shutdown.subscribe();
        let ticker = tokio::spawn(tick(shared.clone()));
        tokio::pin!(stop);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = down.changed() => break,
                accepted = listener.accept() => {
                    let (mut stream, addr) = match accepted {
                        Ok(a) => a,
                        Err(e) => {
                            // Out of descriptors and the like: wait, and go on.
                            tracing::warn!(error = %e, "accept failed");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    };
                    shared.stats.connections_received.fetch_add(1, Relaxed);
                    let laddr = stream.local_addr().unwrap_or(shared.addr);
                    let max = shared.settings.maxclients.load(Relaxed) as usize;
                    let now = shared.clock.now_ms();
                    let Some(handle) = shared.clients.add(addr, laddr, max, now) else {
                        shared.stats.rejected_connections.fetch_add(1, Relaxed);
                        tokio::spawn(async move {
                            let _ = stream.write_all(b"-ERR max number of clients reached\r\n").await;
                        });
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    tokio::spawn(crate::conn::serve(shared.clone(), stream, handle));
                }
            }
        }
        drop(listener);
        ticker.abort();
        let _ = shared.shutdown.send(true);
        let waited = Instant::now();
        while !shared.clients.is_empty() && waited.elapsed() < DRAIN_TIMEOUT {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let s = shared.clone();
        tokio::task::spawn_blocking(move || s.cache.close())
            .await
            .map_err(|e| Error::Io(std::io::Error::other(e)))??;
        Ok(())
    }
}

/// Advances the coarse clock, and keeps INFO's ops/s: commands over the
/// last second, sampled every tick.
async fn tick(shared: Arc<Shared>) {
    const WINDOW: usize = 10;
    let mut samples = [0u64; WINDOW];
    let mut i = 0;
    loop {
        tokio::time::sleep(CoarseClock::TICK).await;
        shared
            .clock
            .set(shared.started.elapsed().as_millis() as u64);
        let total = shared.stats.total_commands();
        let oldest = samples[i % WINDOW];
        samples[i % WINDOW] = total;
        i += 1;
        if i >= WINDOW {
            shared
                .stats
                .ops_per_sec
                .store(total.saturating_sub(oldest), Relaxed);
        }
    }
}
