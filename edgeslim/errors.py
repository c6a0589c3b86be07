"""Errors the CLI turns into one clear line (no traceback wall) and a non-zero exit."""

from __future__ import annotations

import re


class EdgeslimError(RuntimeError):
    """Base of every expected failure: bad input, unreachable service, failed gate."""

    exit_code = 2


class CheckpointError(EdgeslimError):
    """A model file that cannot be loaded, or whose classes do not match the data."""


class ArchError(EdgeslimError):
    """A model architecture (``baseline.arch``) that is unknown or whose yaml cannot be built as asked."""


class DataError(EdgeslimError):
    """A dataset or image pool that is missing, empty or unreadable."""


class RegistryError(EdgeslimError):
    """Unknown model/alias/version, or a tracking server that cannot be reached."""


class PruneError(EdgeslimError):
    """A model that cannot be rewritten, pruned or finetuned as the params ask."""


class GateFailed(EdgeslimError):
    """A quality gate did not pass; nothing was published."""

    exit_code = 3


class FleetError(EdgeslimError):
    """Paging the edge fleet failed: signing key, S3 store, a notification channel, or a bad manifest."""


class ManifestError(FleetError):
    """An update manifest that is malformed, unsigned, signed by an unknown key, expired or replayed."""


class ChannelError(FleetError):
    """A notification channel (mqtt, webhook, iot_jobs) that failed after its retries; names the channel."""


class RolloutAborted(FleetError):
    """A staged rollout crossed an abort threshold (an on-device gate): the fleet was rolled back."""

    exit_code = 3


ERROR_LINE_MAX = 300  # the README's promise: one `edgeslim: error:` line, shorter than this, however long the cause
_CARET = frozenset("^~ \t")


_REPORT_TAIL = re.compile(r"\s*(Nothing published; )?report: \S+$")  # where the run's report is: never cut


def one_line(message: str, prefix: str = "edgeslim: error: ", limit: int = ERROR_LINE_MAX) -> str:
    """``message`` as one line under ``limit`` characters with ``prefix``: its lines joined, caret
    lines (YAML's, Python's) dropped, and the middle cut with an ellipsis (torch's miniz text runs to
    500), keeping a closing ``report: PATH`` whole."""
    parts = [line.strip() for line in message.splitlines() if line.strip() and not set(line) <= _CARET]
    text = prefix + " ".join(parts)
    if len(text) < limit:
        return text
    tail = match.group(0) if (match := _REPORT_TAIL.search(text)) else ""
    return text[: max(len(prefix), limit - 2 - len(tail))] + "…" + tail
