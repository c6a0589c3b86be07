"""An OpenVINO IR folder as one file on the wire: a deterministic tar of its regular files.

Why one file: the manifest, the download (resume, size and sha256 checks), the store's atomic
rename and the kept-previous rollback all work on one file per artifact; an IR is a folder (xml,
bin, metadata.yaml). The tar is byte-identical for identical files (sorted, no timestamps or
owners), so a device can re-pack a kept folder and it still matches the manifest's sha256.
Unpacking takes regular files only, by bare name (no paths, links or devices), and checks each
against the per-file sha256 the manifest carries, so a ``.bin`` that does not belong is refused
before the model is ever loaded.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import tarfile
from pathlib import Path

SUFFIX = ".tar"


class ArchiveError(ValueError):
    """The IR archive is not what its manifest says (or not an archive at all)."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def files_of(folder: Path) -> dict[str, str]:
    """name → sha256 of every file of an IR folder (what the manifest lists)."""
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir()) if p.is_file()}


def pack(folder: Path, out: Path) -> Path:
    """``folder``'s regular files as a deterministic tar at ``out``."""
    out.write_bytes(_tar_bytes(folder))
    return out


def content_sha256(path: Path) -> str:
    """What a manifest's sha256 names: a file's bytes, or an IR folder's deterministic tar."""
    return hashlib.sha256(_tar_bytes(path)).hexdigest() if path.is_dir() else file_sha256(path)


def _tar_bytes(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(folder.iterdir()):
            if not path.is_file():
                continue
            info = tarfile.TarInfo(path.name)
            info.size, info.mode, info.mtime = path.stat().st_size, 0o644, 0
            with path.open("rb") as f:
                tar.addfile(info, f)
    return buffer.getvalue()


def unpack(archive: Path, dest: Path, files: dict[str, str]) -> Path:
    """Extract ``archive`` into the new folder ``dest`` (built beside it, renamed in whole), checking
    that it holds exactly ``files`` (name → sha256) when the manifest lists them."""
    tmp = dest.with_name(f".{dest.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        try:
            with tarfile.open(archive, mode="r:") as tar:
                for member in tar.getmembers():
                    if not member.isfile() or "/" in member.name or member.name in ("", ".", ".."):
                        raise ArchiveError(f"IR archive member {member.name!r} is not a plain file")
                    source = tar.extractfile(member)
                    assert source is not None  # a regular file always has its data
                    with source, (tmp / member.name).open("wb") as out:
                        shutil.copyfileobj(source, out)
        except tarfile.TarError as exc:
            raise ArchiveError(f"not an IR archive: {exc}") from None
        got = files_of(tmp)
        if files and got != files:
            wrong = sorted(n for n in set(files) | set(got) if files.get(n) != got.get(n))
            raise ArchiveError(f"IR files do not match the manifest: {', '.join(wrong)}")
        if not any(n.endswith(".xml") for n in got) or not any(n.endswith(".bin") for n in got):
            raise ArchiveError("IR archive lacks its .xml or .bin")
        shutil.rmtree(dest, ignore_errors=True)
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest
