//! The Prometheus text of the server's figures: per-tier hits and misses,
//! command latency, commands by name, clients, memory, write-back lag and
//! upstream errors.

use crate::server::Shared;
use crate::stats::LATENCY_BUCKETS;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

fn metric(t: &mut String, name: &str, kind: &str, help: &str, value: u64) {
    let _ = write!(
        t,
        "# HELP strata_{name} {help}\n# TYPE strata_{name} {kind}\nstrata_{name} {value}\n"
    );
}

pub fn render(srv: &Shared) -> String {
    let mut t = String::new();
    let s = &srv.stats;
    metric(
        &mut t,
        "connected_clients",
        "gauge",
        "Clients connected.",
        srv.clients.len() as u64,
    );
    metric(
        &mut t,
        "connections_received_total",
        "counter",
        "Connections accepted.",
        s.connections_received.load(Relaxed),
    );
    metric(
        &mut t,
        "rejected_connections_total",
        "counter",
        "Connections refused at maxclients.",
        s.rejected_connections.load(Relaxed),
    );
    metric(
        &mut t,
        "keyspace_hits_total",
        "counter",
        "Reads that found their key.",
        s.keyspace_hits.load(Relaxed),
    );
    metric(
        &mut t,
        "keyspace_misses_total",
        "counter",
        "Reads that did not.",
        s.keyspace_misses.load(Relaxed),
    );
    metric(
        &mut t,
        "error_replies_total",
        "counter",
        "Error replies sent.",
        s.errors.load(Relaxed),
    );
    metric(
        &mut t,
        "protocol_errors_total",
        "counter",
        "Malformed requests.",
        s.protocol_errors.load(Relaxed),
    );
    metric(
        &mut t,
        "upstream_commands_total",
        "counter",
        "Commands that waited for the upstream Redis.",
        s.upstream_commands.load(Relaxed),
    );

    t.push_str("# HELP strata_commands_total Commands applied, by command.\n# TYPE strata_commands_total counter\n");
    for (name, n) in s.by_command() {
        let _ = writeln!(t, "strata_commands_total{{cmd=\"{name}\"}} {n}");
    }

    t.push_str("# HELP strata_command_duration_seconds Time to apply a command.\n# TYPE strata_command_duration_seconds histogram\n");
    let mut cum = 0;
    for b in 0..LATENCY_BUCKETS {
        cum += s.latency[b].load(Relaxed);
        let le = (1u64 << b) as f64 / 1e6;
        let _ = writeln!(
            t,
            "strata_command_duration_seconds_bucket{{le=\"{le}\"}} {cum}"
        );
    }
    let _ = writeln!(
        t,
        "strata_command_duration_seconds_bucket{{le=\"+Inf\"}} {cum}"
    );
    let _ = writeln!(
        t,
        "strata_command_duration_seconds_sum {}",
        s.latency_sum_ns.load(Relaxed) as f64 / 1e9
    );
    let _ = writeln!(t, "strata_command_duration_seconds_count {cum}");

    if let Ok(c) = srv.cache.stats() {
        let l0 = &c.l0;
        t.push_str(
            "# HELP strata_tier_hits_total Hits by tier.\n# TYPE strata_tier_hits_total counter\n",
        );
        let _ = writeln!(t, "strata_tier_hits_total{{tier=\"l0\"}} {}", l0.hits);
        if let Some(l2) = &c.l2 {
            let _ = writeln!(t, "strata_tier_hits_total{{tier=\"l2\"}} {}", l2.hits);
        }
        t.push_str("# HELP strata_tier_misses_total Misses by tier.\n# TYPE strata_tier_misses_total counter\n");
        let _ = writeln!(t, "strata_tier_misses_total{{tier=\"l0\"}} {}", l0.misses);
        if let Some(l2) = &c.l2 {
            let _ = writeln!(t, "strata_tier_misses_total{{tier=\"l2\"}} {}", l2.misses);
            metric(
                &mut t,
                "upstream_errors_total",
                "counter",
                "Failed requests to the upstream Redis.",
                l2.errors,
            );
            metric(
                &mut t,
                "upstream_latency_p99_microseconds",
                "gauge",
                "Upstream request latency, 99th percentile.",
                l2.latency_p99_us,
            );
        }
        metric(
            &mut t,
            "l0_read_latency_p50_nanoseconds",
            "gauge",
            "L0 read latency in the server, 50th percentile (sampled).",
            c.l0_latency.p50_ns,
        );
        metric(
            &mut t,
            "l0_read_latency_p99_nanoseconds",
            "gauge",
            "L0 read latency in the server, 99th percentile (sampled).",
            c.l0_latency.p99_ns,
        );
        metric(&mut t, "l0_entries", "gauge", "Entries in L0.", l0.entries);
        metric(
            &mut t,
            "l0_used_bytes",
            "gauge",
            "Bytes of L0 holding entries.",
            l0.used_bytes,
        );
        metric(
            &mut t,
            "l0_capacity_bytes",
            "gauge",
            "Bytes of L0's data arena.",
            l0.capacity_bytes,
        );
        metric(
            &mut t,
            "l0_evictions_total",
            "counter",
            "Entries evicted from L0.",
            l0.evictions,
        );
        metric(
            &mut t,
            "l0_expirations_total",
            "counter",
            "Entries expired in L0.",
            l0.expirations,
        );
        metric(
            &mut t,
            "promotions_total",
            "counter",
            "Values fetched from the upstream into L0.",
            c.promotions,
        );
        metric(
            &mut t,
            "write_back_pending",
            "gauge",
            "Writes queued for the upstream.",
            c.write_back_pending,
        );
        metric(
            &mut t,
            "write_back_lag_milliseconds",
            "gauge",
            "Age of the oldest queued write.",
            c.write_back_lag_ms,
        );
        metric(
            &mut t,
            "write_back_errors_total",
            "counter",
            "Write-back batches that failed.",
            c.write_back_errors,
        );
    }
    t
}
