"""Keep expected failures to one line in Prefect's logs, and the command's own line last.

Prefect logs a full traceback when a task or flow raises. For an EdgeslimError (bad input, failed
gate) the message is the whole story, so the traceback is dropped; unexpected errors keep theirs.

Without ``PREFECT_API_URL`` a flow run starts Prefect's ephemeral API server
(``prefect.server.api.server.SubprocessASGIServer``), whose ``stop`` is registered with ``atexit`` and
logs ``Stopping temporary server on ...`` to the ``prefect`` logger: after main() has printed the
report path or the ``edgeslim: error:`` line, so that Prefect line would be the terminal's last.
``quiet_prefect_shutdown`` drops just that record; the server is still stopped at exit as before.
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


_SHUTDOWN_MESSAGE = "Stopping temporary server"


class _DropEphemeralShutdown(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.name == "prefect" and str(record.msg).startswith(_SHUTDOWN_MESSAGE))


def quiet_prefect_shutdown() -> None:
    """Drop Prefect's exit-time "Stopping temporary server" log line (idempotent; imports no Prefect).

    A filter on the ``prefect`` logger itself, where prefect 3.x logs that line: logger filters survive
    Prefect's ``logging.config.dictConfig`` setup (which replaces handlers, not filters), so this may be
    called before or after ``import prefect``.
    """
    logger = logging.getLogger("prefect")
    if not any(isinstance(f, _DropEphemeralShutdown) for f in logger.filters):
        logger.addFilter(_DropEphemeralShutdown())
