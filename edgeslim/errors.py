"""Errors the CLI turns into one clear line (no traceback wall) and a non-zero exit."""
from __future__ import annotations


class EdgeslimError(RuntimeError):
    """Base of every expected failure: bad input, unreachable service, failed gate."""

    exit_code = 2


class CheckpointError(EdgeslimError):
    """A model file that cannot be loaded, or whose classes do not match the data."""


class DataError(EdgeslimError):
    """A dataset or image pool that is missing, empty or unreadable."""


class RegistryError(EdgeslimError):
    """Unknown model/alias/version, or a tracking server that cannot be reached."""


class GateFailed(EdgeslimError):
    """A quality gate did not pass; nothing was published."""

    exit_code = 3
