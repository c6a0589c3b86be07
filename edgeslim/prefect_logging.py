"""Keep expected failures to one line in Prefect's logs.

Prefect logs a full traceback when a task or flow raises. For an EdgeslimError (bad input, failed
gate) the message is the whole story, so the traceback is dropped; unexpected errors keep theirs.
"""
from __future__ import annotations

import logging

from edgeslim.errors import EdgeslimError


class _DropExpectedTracebacks(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, EdgeslimError):
            record.exc_info = None
            record.exc_text = None
        return True


def quiet_expected_failures() -> None:
    flt = _DropExpectedTracebacks()
    for name in ("prefect", "prefect.flow_runs", "prefect.task_runs"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropExpectedTracebacks) for f in logger.filters):
            logger.addFilter(flt)
        for handler in logger.handlers:
            if not any(isinstance(f, _DropExpectedTracebacks) for f in handler.filters):
                handler.addFilter(flt)
