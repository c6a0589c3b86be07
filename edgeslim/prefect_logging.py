"""Keep expected failures to one line in Prefect's logs, and the command's own line last.

Prefect logs a full traceback when a task or flow raises. For an EdgeslimError (bad input, failed
gate) the message is the whole story, so the traceback is dropped; unexpected errors keep theirs.

Without ``PREFECT_API_URL`` a flow run starts Prefect's ephemeral API server
(``prefect.server.api.server.SubprocessASGIServer``), whose ``stop`` is registered with ``atexit`` and
logs ``Stopping temporary server on ...`` after main() has printed the report path or the
``edgeslim: error:`` line; ``mute_shutdown_logs`` keeps the command's own line last (the server is
still stopped at exit as before).
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


def mute_shutdown_logs() -> None:
    """No log record after the command's last line: called once main() has printed it.

    What follows is interpreter exit: Prefect's ephemeral server stops (``Stopping temporary
    server on ...``) and its database pool is torn down, which at times logs a sqlalchemy
    ``CancelledError`` traceback (Prefect issue #16504). Neither is the command's outcome, and
    either would bury the report path or the ``edgeslim: error:`` line.
    """
    logging.disable(logging.CRITICAL)
