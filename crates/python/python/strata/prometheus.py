"""A Prometheus collector for strata caches (needs ``prometheus_client``,
an optional dependency: ``pip install prometheus_client``).

    from prometheus_client import REGISTRY
    from strata.prometheus import Collector
    REGISTRY.register(Collector(cache))

Every figure of ``cache.stats()`` becomes a metric ``strata_<figure>``
labelled with the cache's name: counters (totals since creation, with the
``_total`` suffix) and gauges.
"""

from __future__ import annotations

from typing import Any, Iterator

# Figures that only grow: exported as counters.
COUNTERS = frozenset(
    {
        "hits", "misses", "inserts", "updates", "deletes", "evictions", "expirations",
        "rejections", "repairs", "slab_reassigns", "l2_hits", "l2_misses", "l2_errors",
        "l2_requests", "promotions", "write_back_flushed", "write_back_errors", "computes",
        "coalesced_waits", "early_refreshes", "invalidations_sent", "invalidations_received",
        "invalidation_gaps",
    }
)


class Collector:
    """Collects `cache.stats()` at each scrape."""

    def __init__(self, cache: Any, prefix: str = "strata") -> None:
        self._cache = cache
        self._prefix = prefix

    def describe(self) -> list:
        # Returning nothing keeps the registry from calling collect() at
        # registration, when the cache may not be ready.
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        stats = self._cache.stats()
        name = self._cache.name
        for key, value in sorted(stats.items()):
            metric = f"{self._prefix}_{key}"
            if isinstance(value, str):
                # The breaker's state: one gauge per state, 1 for the current.
                g = GaugeMetricFamily(metric, f"strata {key}", labels=["cache", "state"])
                for state in ("closed", "open", "half-open"):
                    g.add_metric([name, state], 1.0 if value == state else 0.0)
                yield g
                continue
            if key in COUNTERS:
                c = CounterMetricFamily(metric, f"strata {key.replace('_', ' ')}", labels=["cache"])
                c.add_metric([name], float(value))
                yield c
            else:
                g = GaugeMetricFamily(metric, f"strata {key.replace('_', ' ')}", labels=["cache"])
                g.add_metric([name], float(value))
                yield g
