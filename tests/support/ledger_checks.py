"""Read the ledger and a job's own writes, and check the exactly-once guarantee on them."""

from __future__ import annotations

import itertools
import json
from collections import Counter
from dataclasses import dataclass

import redis

from tests.support.probe_jobs import PROBE, probe_key
from tickonce._firing.record import RunRecord, fire_ms
from tickonce._storage.keys import Keys


@dataclass
class Evidence:
    """One job's ledger and, when the job keeps one, its own record of what it ran."""

    job_id: str
    ledger: list[RunRecord]
    own_writes: list[dict[str, int | str]] | None  # None: this job writes no record of its own

    @property
    def ledger_times(self) -> list[int]:
        """Every fire time the ledger accounts for (a counted range stands for ``count`` evenly
        spaced times: exact for interval jobs, which is what these checks are used on)."""
        return sorted(time for entry in self.ledger for time in fire_times(entry))

    @property
    def succeeded_times(self) -> list[int]:
        return sorted(fire_ms(e.scheduled_at) for e in self.ledger if e.status == "succeeded")

    @property
    def written_times(self) -> list[int]:
        if self.own_writes is None:
            raise ValueError(
                f"no own writes were read for job {self.job_id!r}: only the probe task writes "
                "them (tests.support.probe_jobs); pass own_writes_key for another schedule of it"
            )
        return sorted(int(write["at"]) for write in self.own_writes)

    def runners(self) -> set[str]:
        return {entry.runner for entry in self.ledger}


def read_evidence(
    client: redis.Redis,
    prefix: str,
    job_id: str = PROBE,
    *,
    own_writes_key: str | None = None,
    keys: Keys | None = None,
) -> Evidence:
    """``job_id``'s ledger and, from the list ``own_writes_key``, the records it wrote itself.

    Only the probe task (tests.support.probe_jobs) writes such records, each naming the
    schedule that ran it; only ``job_id``'s are kept. ``own_writes_key`` defaults to the probe's
    list for the probe schedule and to none for any other job, whose ``own_writes`` is then
    None (asking for its written times fails instead of answering with another job's).
    ``keys``: the deployment's keys when it has several shards (or runs on Redis Cluster).
    """
    entries = client.xrange((keys or Keys(prefix)).ledger(job_id))
    ledger = [RunRecord.from_fields(fields) for _, fields in entries or []]
    if own_writes_key is None and job_id == PROBE:
        own_writes_key = probe_key(prefix)
    own: list[dict[str, int | str]] | None = None
    if own_writes_key is not None:
        records = [json.loads(item) for item in client.lrange(own_writes_key, 0, -1)]
        own = [record for record in records if record["job"] == job_id]
    return Evidence(job_id, ledger, own)


def fire_times(entry: RunRecord) -> list[int]:
    """The fire times (ms) one ledger entry accounts for."""
    return spread(fire_ms(entry.scheduled_at), fire_ms(entry.last_scheduled_at), entry.count)


def spread(first: int, last: int, count: int) -> list[int]:
    """``count`` evenly spaced times from ``first`` to ``last``: a counted range's fire times
    (exact for interval jobs, which is what these checks are used on)."""
    if count == 1:
        return [first]
    step = (last - first) / (count - 1)
    return [round(first + n * step) for n in range(count)]


def duplicates(times: list[int]) -> list[int]:
    return sorted(time for time, count in Counter(times).items() if count > 1)


def gaps(times: list[int], interval_ms: int = 1000) -> list[tuple[int, int]]:
    """Consecutive fire times further apart than one interval (1 ms of rounding allowed)."""
    ordered = sorted(set(times))
    return [(a, b) for a, b in itertools.pairwise(ordered) if b - a > interval_ms + 1]


# Reasons a run ends with when its runner was cut off mid-run: its body may or may not have
# done its work.
CUT_OFF = ("runner_lost", "slot_lost")


def assert_exactly_once(
    evidence: Evidence,
    *,
    min_runs: int,
    allow_lost: bool = False,
    body_errors: tuple[str, ...] = (),
) -> None:
    """No fire time twice (ledger and own writes agree); with catch-up, no time missing.

    ``allow_lost``: a runner killed or cut off mid-run may have its fire recorded as
    ``failed: runner_lost`` by the next leader, and a body whose running slot could no longer
    be proven held is stopped and recorded as ``failed: slot_lost``, while it did (or did not)
    write; and a lost running slot counts until it expires, so the job's next fires may be
    skipped meanwhile.
    ``body_errors``: exceptions the body itself may raise (its own writes to a Redis under
    fault), recorded as ``failed: exception``; the fire time still ran once.
    """
    assert not duplicates(evidence.ledger_times), (
        f"fire times with more than one ledger entry: {duplicates(evidence.ledger_times)}"
    )
    assert not duplicates(evidence.written_times), (
        f"fire times the job itself ran twice: {duplicates(evidence.written_times)}"
    )
    written, succeeded = set(evidence.written_times), set(evidence.succeeded_times)
    cut_off = {fire_ms(e.scheduled_at) for e in evidence.ledger if e.reason in CUT_OFF}
    body_failed = {
        fire_ms(e.scheduled_at)
        for e in evidence.ledger
        if body_errors and e.error.startswith(body_errors)
    }
    assert succeeded <= written, f"recorded as succeeded but never ran: {succeeded - written}"
    unaccounted = written - succeeded - body_failed - (cut_off if allow_lost else set())
    assert not unaccounted, (
        "ran but not recorded as succeeded: "
        f"{[e for e in evidence.ledger if fire_ms(e.scheduled_at) in unaccounted]}"
    )
    assert len(succeeded) >= min_runs, f"only {len(succeeded)} runs, expected {min_runs}"
    assert not gaps(evidence.ledger_times), (
        f"fire times with no ledger entry between {gaps(evidence.ledger_times)}"
    )
    expected = [e for e in evidence.ledger if not (body_errors and e.error.startswith(body_errors))]
    statuses = Counter(f"{e.status}:{e.reason}" for e in expected)
    after_loss = {*(f"failed:{reason}" for reason in CUT_OFF), "skipped:max_instances (1) reached"}
    allowed = {"succeeded:", *(after_loss if allow_lost else set())}
    unexpected = [e for e in expected if f"{e.status}:{e.reason}" not in allowed]
    if unexpected:
        by_time = sorted(evidence.ledger, key=lambda e: e.scheduled_at)
        at = by_time.index(unexpected[0])
        around = "\n".join(f"  {e}" for e in by_time[max(at - 2, 0) : at + 2])
        raise AssertionError(
            f"unexpected outcomes: {statuses}; the first, and around it:\n{around}"
        )
