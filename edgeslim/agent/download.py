"""Resumable, size-capped, checksummed download of one artifact into ``downloads/<sha>.part``.

Why resumable: edge links drop, and devices reboot mid-download; the partial file survives and
the next try asks only for the missing bytes (HTTP Range). The size in the signed manifest is a
hard cap: a server that sends more is cut off, so a hostile or broken endpoint cannot fill the disk.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path

import requests

from edgeslim.config import FleetAgentParams
from edgeslim.digest import file_sha256


class DownloadError(Exception):
    """``permanent``: retrying the same manifest cannot help (tampered or oversized artifact)."""

    def __init__(self, reason: str, permanent: bool) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class Downloaded:
    path: Path
    resumed_from: int  # bytes already on disk when this download started


def _stream(url: str, part: Path, size: int, knobs: FleetAgentParams, log: Callable[[str], None]) -> None:
    """One GET from where ``part`` ends; appends at most ``size`` bytes in total."""
    have = part.stat().st_size if part.exists() else 0
    headers = {"Range": f"bytes={have}-"} if have else {}
    with requests.get(url, headers=headers, stream=True, timeout=knobs.http_timeout_s) as response:
        if response.status_code == HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE:
            raise DownloadError(f"truncated download: the server holds only {have} of {size} bytes", permanent=False)
        if response.status_code not in (HTTPStatus.OK, HTTPStatus.PARTIAL_CONTENT):
            raise DownloadError(f"download failed: HTTP {response.status_code}", permanent=False)
        if have and response.status_code == HTTPStatus.OK:
            log("server ignored the Range header; downloading from the start")
            have = 0
        started = time.monotonic()
        sent = 0
        with part.open("r+b" if have else "wb") as out:
            out.seek(have)
            out.truncate()
            for chunk in response.iter_content(knobs.chunk_bytes):
                if have + sent + len(chunk) > size:
                    raise DownloadError(f"server sent more than the manifest's {size} bytes", permanent=True)
                out.write(chunk)
                sent += len(chunk)
                if knobs.rate_limit_bps:  # bandwidth cap for metered links
                    ahead = sent / knobs.rate_limit_bps - (time.monotonic() - started)
                    if ahead > 0:
                        out.flush()
                        time.sleep(ahead)


def download(url: str, part: Path, size: int, sha256: str, knobs: FleetAgentParams, log: Callable[[str], None] = print) -> Downloaded:
    """Fetch ``url`` into ``part`` until it has ``size`` bytes, then check ``sha256``."""
    if size > knobs.max_artifact_bytes:
        raise DownloadError(f"artifact of {size} bytes is over the device limit of {knobs.max_artifact_bytes}", permanent=True)
    if part.exists() and part.stat().st_size > size:
        part.unlink()
    resumed_from = part.stat().st_size if part.exists() else 0
    if resumed_from:
        log(f"resuming the download at byte {resumed_from} of {size}")
    last_error = "no try made"
    for attempt in range(1, knobs.download_retries + 1):
        if part.exists() and part.stat().st_size == size:
            break
        try:
            _stream(url, part, size, knobs, log)
        except DownloadError as exc:
            if exc.permanent:
                part.unlink(missing_ok=True)
                raise
            last_error = str(exc)
        except requests.RequestException as exc:  # dropped connection, timeout, short read
            last_error = f"download interrupted: {type(exc).__name__}: {str(exc)[:200]}"
        got = part.stat().st_size if part.exists() else 0
        if got < size and attempt < knobs.download_retries:
            log(f"try {attempt}/{knobs.download_retries}: have {got} of {size} bytes ({last_error})")
            time.sleep(knobs.retry_backoff_s * 2 ** (attempt - 1))
    got = part.stat().st_size if part.exists() else 0
    if got != size:
        raise DownloadError(f"{last_error} (have {got} of {size} bytes after {knobs.download_retries} tries)", permanent=False)
    actual = file_sha256(part)
    if actual != sha256:
        part.unlink()
        raise DownloadError(
            f"sha256 mismatch: got {actual[:16]}…, manifest says {sha256[:16]}… (artifact tampered or corrupt)", permanent=True
        )
    return Downloaded(part, resumed_from)
