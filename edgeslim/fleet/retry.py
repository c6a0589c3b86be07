"""Retry with exponential backoff; the last error is re-raised so a failure is reported, not hidden."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def with_retries(
    action: Callable[[], T], tries: int, backoff_s: float, retry_on: tuple[type[BaseException], ...], log: Callable[[str], None] = print
) -> T:
    """Run ``action`` up to ``tries`` times, sleeping ``backoff_s * 2**n`` after the n-th failure."""
    attempt = 1
    while True:
        try:
            return action()
        except retry_on as exc:
            if attempt >= tries:
                raise
            delay = backoff_s * 2 ** (attempt - 1)
            log(f"try {attempt}/{tries} failed ({exc}); retrying in {delay:g}s")
            time.sleep(delay)
            attempt += 1
