//! INFO's text: Redis's sections with the fields strata has, and a
//! `strata` section with every tier's figures.

use crate::cmd::connection::REDIS_VERSION;
use crate::exec::Fail;
use crate::server::Shared;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

const DEFAULT: &[&str] = &["server", "clients", "memory", "stats", "keyspace", "strata"];
const ALL: &[&str] = &[
    "server",
    "clients",
    "memory",
    "stats",
    "commandstats",
    "keyspace",
    "strata",
];

pub fn render(srv: &Shared, asked: &[String]) -> Result<String, Fail> {
    let wanted: Vec<&str> = if asked.is_empty() || asked.iter().any(|s| s == "default") {
        DEFAULT.to_vec()
    } else if asked.iter().any(|s| s == "all" || s == "everything") {
        ALL.to_vec()
    } else {
        ALL.iter()
            .copied()
            .filter(|s| asked.iter().any(|a| a == s))
            .collect()
    };
    let cache = srv.cache.stats()?;
    let l0 = &cache.l0;
    let mut t = String::new();
    let human = |b: u64| strata_shm::format_size(b).replace(' ', "");
    let uptime = srv.started.elapsed().as_secs();
    for (i, section) in wanted.iter().enumerate() {
        if i > 0 {
            t.push_str("\r\n");
        }
        match *section {
            "server" => {
                let _ = write!(
                    t,
                    "# Server\r\nredis_version:{REDIS_VERSION}\r\nstrata_version:{}\r\nredis_mode:standalone\r\nos:{} {}\r\narch_bits:64\r\nprocess_id:{}\r\ntcp_port:{}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{}\r\n",
                    env!("CARGO_PKG_VERSION"),
                    std::env::consts::OS,
                    std::env::consts::ARCH,
                    std::process::id(),
                    srv.settings.port,
                    uptime / 86400
                );
            }
            "clients" => {
                let pubsub = srv
                    .clients
                    .all()
                    .iter()
                    .filter(|c| c.subs.load(Relaxed) + c.psubs.load(Relaxed) > 0)
                    .count();
                let _ = write!(
                    t,
                    "# Clients\r\nconnected_clients:{}\r\nmaxclients:{}\r\nblocked_clients:0\r\npubsub_clients:{pubsub}\r\n",
                    srv.clients.len(),
                    srv.settings.maxclients.load(Relaxed)
                );
            }
            "memory" => {
                let _ = write!(
                    t,
                    "# Memory\r\nused_memory:{}\r\nused_memory_human:{}\r\nmaxmemory:{}\r\nmaxmemory_human:{}\r\nmaxmemory_policy:strata-tinylfu\r\nl0_segment_bytes:{}\r\n",
                    l0.used_bytes,
                    human(l0.used_bytes),
                    l0.capacity_bytes,
                    human(l0.capacity_bytes),
                    l0.memory_bytes
                );
            }
            "stats" => {
                let s = &srv.stats;
                let _ = write!(
                    t,
                    "# Stats\r\ntotal_connections_received:{}\r\ntotal_commands_processed:{}\r\ninstantaneous_ops_per_sec:{}\r\ntotal_net_input_bytes:{}\r\ntotal_net_output_bytes:{}\r\nrejected_connections:{}\r\nexpired_keys:{}\r\nevicted_keys:{}\r\nkeyspace_hits:{}\r\nkeyspace_misses:{}\r\npubsub_channels:{}\r\npubsub_patterns:{}\r\ntotal_error_replies:{}\r\nprotocol_errors:{}\r\n",
                    s.connections_received.load(Relaxed),
                    s.total_commands(),
                    s.ops_per_sec.load(Relaxed),
                    s.net_input_bytes.load(Relaxed),
                    s.net_output_bytes.load(Relaxed),
                    s.rejected_connections.load(Relaxed),
                    l0.expirations,
                    l0.evictions,
                    s.keyspace_hits.load(Relaxed),
                    s.keyspace_misses.load(Relaxed),
                    srv.broker.channels(None).len(),
                    srv.broker.numpat(),
                    s.errors.load(Relaxed),
                    s.protocol_errors.load(Relaxed),
                );
            }
            "commandstats" => {
                t.push_str("# Commandstats\r\n");
                for (name, calls) in srv.stats.by_command() {
                    let _ = write!(t, "cmdstat_{name}:calls={calls}\r\n");
                }
            }
            "keyspace" => {
                t.push_str("# Keyspace\r\n");
                if l0.entries > 0 {
                    let _ = write!(t, "db0:keys={},expires=0,avg_ttl=0\r\n", l0.entries);
                }
            }
            "strata" => {
                let _ = write!(
                    t,
                    "# Strata\r\nsegment:{}\r\nwrite_policy:{:?}\r\nupstream:{}\r\nupstream_commands:{}\r\n",
                    srv.cache.segment().name(),
                    srv.cache.write_policy(),
                    if srv.cache.has_l2() { "redis" } else { "none" },
                    srv.stats.upstream_commands.load(Relaxed),
                );
                for (k, v) in l0.fields() {
                    let _ = write!(t, "l0_{k}:{v}\r\n");
                }
                let _ = write!(
                    t,
                    "l0_latency_p50_ns:{}\r\nl0_latency_p99_ns:{}\r\n",
                    cache.l0_latency.p50_ns, cache.l0_latency.p99_ns
                );
                if let Some(l2) = &cache.l2 {
                    let _ = write!(
                        t,
                        "l2_hits:{}\r\nl2_misses:{}\r\nl2_errors:{}\r\nl2_requests:{}\r\nl2_latency_p50_us:{}\r\nl2_latency_p99_us:{}\r\nl2_breaker:{}\r\n",
                        l2.hits, l2.misses, l2.errors, l2.requests, l2.latency_p50_us, l2.latency_p99_us, l2.breaker
                    );
                }
                let _ = write!(
                    t,
                    "promotions:{}\r\nwrite_back_pending:{}\r\nwrite_back_lag_ms:{}\r\nwrite_back_flushed:{}\r\nwrite_back_errors:{}\r\n",
                    cache.promotions,
                    cache.write_back_pending,
                    cache.write_back_lag_ms,
                    cache.write_back_flushed,
                    cache.write_back_errors
                );
            }
            _ => {}
        }
    }
    Ok(t)
}
