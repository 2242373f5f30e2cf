"""Job functions for the drop-in scheduler's tests: importable by name, as jobs must be."""

from __future__ import annotations

import asyncio
from typing import Any


async def noop() -> None:
    await asyncio.sleep(0)


def report(customer: str, days: int = 7, **options: Any) -> None:
    """A job with arguments (stored by name)."""


def spread(*customers: str) -> None:
    """A job whose arguments cannot be stored by name."""


class Reports:
    def send(self) -> None:
        """A bound method: it runs with an object of this process only."""
