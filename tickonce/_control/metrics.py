"""Cluster-wide metrics, kept in Redis so every worker of every replica reports the same truth.

The Lua calls that record runs also count them (no extra round trip on the hot path; the names
are _storage/counters.py's); the API renders the counts in Prometheus' text format.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tickonce._leadership.membership import live_members
from tickonce._storage import counters
from tickonce._storage.clients import text
from tickonce._storage.counters import DURATION_BUCKETS, LATENESS_BUCKETS, SEP
from tickonce._storage.keys import Keys


@dataclass
class Snapshot:
    """Everything /metrics shows, read from Redis at once."""

    counters: dict[str, float]  # summed over the shards
    epochs: dict[int, int | None]  # shard -> its current fencing epoch
    members: dict[str, int] = field(default_factory=dict)


async def read_snapshot(client: aioredis.Redis, keys: Keys, member_window_ms: int) -> Snapshot:
    shards = keys.every_shard()
    async with client.pipeline(transaction=False) as pipe:
        for shard in shards:
            pipe.hgetall(shard.counters)
            pipe.get(shard.epoch)
        answers = await pipe.execute()
    counts: dict[str, float] = defaultdict(float)
    for raw in answers[::2]:
        for name, value in raw.items():
            counts[text(name)] += float(value)
    epochs = {
        shard.shard: int(epoch) if epoch else None
        for shard, epoch in zip(shards, answers[1::2], strict=True)
    }
    roles: dict[str, int] = defaultdict(int)
    for member in await live_members(client, keys, member_window_ms):
        roles[member.role] += 1
    return Snapshot(dict(counts), epochs, dict(roles))


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        counts = self._snapshot.counters
        runs = CounterMetricFamily(
            "tickonce_runs", "Fire times recorded in the ledger.", labels=["job", "status"]
        )
        refused = CounterMetricFamily(
            "tickonce_claims_refused",
            "Claims refused: taken already, or a stale epoch.",
            labels=["reason"],
        )
        histograms: dict[str, dict[str, list[float]]] = {name: {} for name in counters.BUCKETS}
        sums: dict[str, dict[str, float]] = {name: {} for name in counters.BUCKETS}
        for name, value in sorted(counts.items()):
            parts = name.split(SEP)
            if parts[0] == counters.RUNS and len(parts) == 3:
                runs.add_metric([parts[1], parts[2]], value)
            elif parts[0] in histograms and len(parts) == 3:
                size = len(counters.BUCKETS[parts[0]]) + 1
                observed = histograms[parts[0]].setdefault(parts[1], [0.0] * size)
                index = int(parts[2])
                if 0 <= index < size:
                    observed[index] += value
            elif parts[0].endswith("_sum") and len(parts) == 2:
                sums[parts[0].removesuffix("_sum")][parts[1]] = value
        for reason, name in counters.CLAIMS_REFUSED.items():
            refused.add_metric([reason], counts.get(name, 0.0))
        yield runs
        yield refused
        yield from self._histogram(
            "tickonce_fire_lateness_seconds",
            "Actual start minus scheduled time of scheduled runs.",
            LATENESS_BUCKETS,
            histograms[counters.LATENESS],
            sums[counters.LATENESS],
        )
        yield from self._histogram(
            "tickonce_run_duration_seconds",
            "How long job bodies ran.",
            DURATION_BUCKETS,
            histograms[counters.DURATION],
            sums[counters.DURATION],
        )
        yield CounterMetricFamily(
            "tickonce_lease_acquisitions",
            "Leader lease acquisitions.",
            value=counts.get(counters.LEASE_ACQUISITIONS, 0.0),
        )
        yield CounterMetricFamily(
            "tickonce_lease_renewal_failures",
            "Lease renewals that failed or were not confirmed.",
            value=counts.get(counters.LEASE_RENEWAL_FAILURES, 0.0),
        )
        epochs = GaugeMetricFamily(
            "tickonce_leader_epoch", "The current fencing epoch of each shard.", labels=["shard"]
        )
        for shard, epoch in sorted(self._snapshot.epochs.items()):
            epochs.add_metric([str(shard)], float(epoch or 0))
        yield epochs
        members = GaugeMetricFamily("tickonce_members", "Live contenders by role.", labels=["role"])
        for role in ("leader", "standby", "retiring"):
            members.add_metric([role], float(self._snapshot.members.get(role, 0)))
        yield members

    @staticmethod
    def _histogram(
        name: str,
        documentation: str,
        bounds: tuple[float, ...],
        counts: dict[str, list[float]],
        sums: dict[str, float],
    ) -> Iterator[Metric]:
        family = HistogramMetricFamily(name, documentation, labels=["job"])
        for job, per_bucket in sorted(counts.items()):
            cumulative, buckets = 0.0, []
            for bound, count in zip([*map(str, bounds), "+Inf"], per_bucket, strict=True):
                cumulative += count
                buckets.append((bound, cumulative))
            family.add_metric([job], buckets, sum_value=sums.get(job, 0.0))
        yield family


def render(snapshot: Snapshot) -> bytes:
    """The snapshot in Prometheus' text exposition format."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SnapshotCollector(snapshot))
    return generate_latest(registry)
