"""Cluster-wide metrics, kept in Redis so every worker of every replica reports the same truth.

The Lua calls that record runs also count them (no extra round trip on the hot path); the API
renders the counts in Prometheus' text format.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import redis.asyncio as aioredis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from services.core.connection import text
from services.core.keys import Keys
from services.core.membership import live_members

if TYPE_CHECKING:
    from services.core.ledger import RunRecord

LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
DURATION_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
)
SEP = "|"  # job ids cannot contain it (see schedules.JOB_ID_PATTERN)


def run_increments(record: RunRecord) -> list[tuple[str, float]]:
    """Counter increments for one recorded run: its status, and the lateness and duration
    histograms when its body ran."""
    job = record.job_id
    increments = [(f"runs{SEP}{job}{SEP}{record.status}", float(record.count))]
    if record.started_at is not None and not record.manual:
        lateness = max(0.0, (record.started_at - record.scheduled_at).total_seconds())
        increments += _observe("lateness", job, lateness, LATENESS_BUCKETS)
    if record.duration_ms is not None:
        increments += _observe("duration", job, record.duration_ms / 1000, DURATION_BUCKETS)
    return increments


def _observe(
    name: str, job: str, value: float, buckets: tuple[float, ...]
) -> list[tuple[str, float]]:
    bucket = bisect.bisect_left(buckets, value)  # index len(buckets) is +Inf
    return [(f"{name}{SEP}{job}{SEP}{bucket}", 1.0), (f"{name}_sum{SEP}{job}", value)]


def flat(increments: list[tuple[str, float]]) -> list[str | float]:
    """``[count, field, value, field, value, ...]`` as the recording Lua scripts take them."""
    return [len(increments), *(part for pair in increments for part in pair)]


@dataclass
class Snapshot:
    """Everything /metrics shows, read from Redis at once."""

    counters: dict[str, float]
    epoch: int | None
    members: dict[str, int] = field(default_factory=dict)


async def read_snapshot(client: aioredis.Redis, keys: Keys, member_window_ms: int) -> Snapshot:
    raw = await client.hgetall(keys.counters)
    epoch = await client.get(keys.epoch)
    roles: dict[str, int] = defaultdict(int)
    for member in await live_members(client, keys, member_window_ms):
        roles[member.role] += 1
    return Snapshot(
        {text(k): float(v) for k, v in raw.items()}, int(epoch) if epoch else None, dict(roles)
    )


class _SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        counters = self._snapshot.counters
        runs = CounterMetricFamily(
            "tickonce_runs", "Fire times recorded in the ledger.", labels=["job", "status"]
        )
        refused = CounterMetricFamily(
            "tickonce_claims_refused",
            "Claims refused: taken already, or a stale epoch.",
            labels=["reason"],
        )
        histograms: dict[str, dict[str, list[float]]] = {"lateness": {}, "duration": {}}
        sums: dict[str, dict[str, float]] = {"lateness": {}, "duration": {}}
        for name, value in sorted(counters.items()):
            parts = name.split(SEP)
            if parts[0] == "runs" and len(parts) == 3:
                runs.add_metric([parts[1], parts[2]], value)
            elif parts[0] in histograms and len(parts) == 3:
                size = len(LATENESS_BUCKETS if parts[0] == "lateness" else DURATION_BUCKETS) + 1
                counts = histograms[parts[0]].setdefault(parts[1], [0.0] * size)
                index = int(parts[2])
                if 0 <= index < size:
                    counts[index] += value
            elif parts[0].endswith("_sum") and len(parts) == 2:
                sums[parts[0].removesuffix("_sum")][parts[1]] = value
        for reason in ("taken", "stale_epoch"):
            refused.add_metric([reason], counters.get(f"claims_refused_{reason}", 0.0))
        yield runs
        yield refused
        yield from self._histogram(
            "tickonce_fire_lateness_seconds",
            "Actual start minus scheduled time of scheduled runs.",
            LATENESS_BUCKETS,
            histograms["lateness"],
            sums["lateness"],
        )
        yield from self._histogram(
            "tickonce_run_duration_seconds",
            "How long job bodies ran.",
            DURATION_BUCKETS,
            histograms["duration"],
            sums["duration"],
        )
        yield CounterMetricFamily(
            "tickonce_lease_acquisitions",
            "Leader lease acquisitions.",
            value=counters.get("lease_acquisitions", 0.0),
        )
        yield CounterMetricFamily(
            "tickonce_lease_renewal_failures",
            "Lease renewals that failed or were not confirmed.",
            value=counters.get("lease_renewal_failures", 0.0),
        )
        yield GaugeMetricFamily(
            "tickonce_leader_epoch",
            "The current fencing epoch.",
            value=float(self._snapshot.epoch or 0),
        )
        members = GaugeMetricFamily("tickonce_members", "Live contenders by role.", labels=["role"])
        for role in ("leader", "standby"):
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
