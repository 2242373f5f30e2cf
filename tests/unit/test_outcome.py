"""Ledger statuses and reasons are enums whose stored text is what every release stored."""

from __future__ import annotations

from tickonce._firing.decide import CATCH_UP_SKIP
from tickonce._firing.outcome import Reason, Status
from tickonce._firing.record import refused_reason


def test_statuses_store_as_they_always_have() -> None:
    assert [str(status) for status in Status] == ["succeeded", "failed", "skipped", "missed"]


def test_reasons_with_a_detail_store_as_they_always_have_and_read_back() -> None:
    assert refused_reason(2) == "max_instances (2) reached"
    assert CATCH_UP_SKIP == "catch_up=skip"
    assert Reason.MISSED.detailed("more than 1s late") == "missed: more than 1s late"
    stored = {
        "max_instances (2) reached": Reason.MAX_INSTANCES,
        "catch_up=skip": Reason.CATCH_UP,
        "catch_up=all: more than 500 overdue at once": Reason.CATCH_UP,
        "missed by 0.412s": Reason.MISSED,
        "missed: more than 1s late": Reason.MISSED,
        "coalesced": Reason.COALESCED,
        "runner_lost": Reason.RUNNER_LOST,
        "claim_not_durable": Reason.CLAIM_NOT_DURABLE,
    }
    for text, code in stored.items():
        assert Reason.of(text) is code, text
    assert Reason.of("") is None
    assert Reason.of("a_reason_of_a_later_version") is None
