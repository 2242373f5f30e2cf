"""The arithmetic behind bench/PEERS.md: how runs become fire times, duplicates and misses, and
which figures count as tickonce losing. No system runs here."""

from __future__ import annotations

import argparse

from bench.peers.measure import (
    ColdStarts,
    Entry,
    Failover,
    Runs,
    Takeover,
    fire_times,
    lost_fire_times,
    percentile,
)
from bench.peers.report import losses, render
from bench.peers.systems import SYSTEMS, System


def system(label: str) -> System:
    return next(s for s in SYSTEMS if s.label == label)


TICKONCE = system("tickonce (defaults)")
NAIVE = system("naive recipe (defaults)")
RQ = system("RQ cron (defaults)")


def runs(of: System, entries: list[tuple[str, float, float]], interval: int = 1) -> Runs:
    found = [Entry(job, scheduled, started, "x") for job, scheduled, started in entries]
    return Runs(of, 2, len({job for job, _, _ in entries}), interval, 3.0 * interval, found)


def test_enqueue_times_of_one_fire_time_count_once() -> None:
    # Two instances enqueue one fire time apart; the next fire time is an interval later.
    assert fire_times([10.0, 10.004, 11.0, 11.3, 12.0], interval=1) == 3
    assert fire_times([10.0, 11.9, 15.0], interval=5) == 2


def test_duplicates_and_misses() -> None:
    row = runs(NAIVE, [("a", 10.0, 10.01), ("a", 10.0, 10.02), ("a", 12.0, 12.01)])
    assert (row.runs, row.fire_times, row.duplicates, row.missed) == (3, 2, 1, 1)
    assert (round(row.lateness_ms(0.5)), round(row.lateness_ms(0.99))) == (10, 20)


def test_without_scheduled_times_runs_are_counted_against_the_fire_times() -> None:
    # RQ's enqueue times of one fire time can lie further apart than half an interval.
    row = runs(RQ, [("a", 10.0, 10.1), ("a", 10.6, 10.7), ("a", 11.0, 11.1), ("a", 12.0, 12.1)])
    assert (row.expected, row.duplicates, row.missed) == (3, 1, 0)
    assert runs(RQ, [("a", 10.0, 10.1), ("a", 11.0, 11.1)]).missed == 1


def test_fire_times_lost_in_a_takeover() -> None:
    found = [Entry("a", at, at + 0.01, "x") for at in (10.0, 11.0)]
    first = Entry("a", 16.0, 16.01, "y")
    assert lost_fire_times([*found, first], first) == 4  # 12, 13, 14 and 15 never ran
    caught_up = Entry("a", 12.0, 16.01, "y")  # a late run of the next fire time: none lost
    assert lost_fire_times([*found, caught_up], caught_up) == 0


def test_percentile_is_nearest_rank() -> None:
    values = [float(n) for n in range(1, 101)]
    assert percentile(values, 0.5) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([7.0], 0.99) == 7.0


def test_losses_name_what_beats_tickonce_and_leave_out_enqueue_times() -> None:
    ours = runs(TICKONCE, [("a", 10.0, 10.05), ("a", 11.0, 11.05), ("a", 12.0, 12.05)])
    naive = runs(NAIVE, [("a", 10.0, 10.001), ("a", 10.0, 10.002), ("a", 11.0, 11.001)])
    rq = runs(RQ, [("a", 10.0, 10.0), ("a", 11.0, 11.0), ("a", 12.0, 12.0)])

    def tries(*gaps: float | None) -> list[Takeover]:
        return [Takeover(gap, None if gap is None else 0) for gap in gaps]

    kill = [
        Failover(TICKONCE, "SIGKILL", 60, tries(5.0, 15.0, 5.0)),
        Failover(NAIVE, "SIGKILL", 60, tries(1.0, 1.0, 1.0)),
        Failover(RQ, "SIGKILL", 60, tries(None, None, 0.5)),
    ]
    lines = losses([ours, naive, rq], [ours, naive, rq], kill)
    assert any(line.startswith("- 1 job, lateness p50: naive recipe") for line in lines)
    assert any("naive recipe" in line and "1 duplicate runs" in line for line in lines)
    assert not any("lateness" in line and "RQ cron" in line for line in lines)  # † left out
    assert any("SIGKILL" in line and "naive recipe" in line for line in lines)
    assert not any("SIGKILL" in line and "RQ cron" in line for line in lines)  # > cap median


def test_the_report_renders_every_section() -> None:
    entries = [("a", 10.0, 10.05), ("a", 11.0, 11.05), ("a", 12.0, 12.05)]
    systems = [TICKONCE, NAIVE, RQ]
    single = [runs(s, entries) for s in systems]
    burst = [runs(s, entries, interval=5) for s in systems]
    cold = [ColdStarts(s, [False, True]) for s in systems]
    failovers = [
        Failover(s, kind, 60, [Takeover(1.0, 0), Takeover(None, None)])
        for kind in ("SIGKILL", "SIGTERM")
        for s in systems
    ]
    args = argparse.Namespace(window=30.0, burst_window=15.0, cap=60.0)
    report = render(single, burst, cold, failovers, args, "15", 60.0)
    for heading in ("## Summary", "## Where tickonce loses", "## Failover after SIGTERM"):
        assert heading in report
    assert "| RQ cron | defaults | 0 / 0 † | 50 / 50 ms †; 50 / 50 ms † |" in report
    assert "> 60 s" in report and "1 of 2" in report
