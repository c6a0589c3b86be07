"""What this machine's CPU offers, read from its flags, and the target profile that matches it.

Profiles go by what the CPU offers, not by brand: ``x86-amx`` (AMX or AVX512-BF16: bf16 kernels),
``x86-vnni`` (AVX-VNNI or AVX512-VNNI: int8 dot products), ``x86-avx2``, ``arm64``. The flow
measures the formats' latencies only where the machine matches the target's profile, because a
ranking measured on another CPU class says nothing about the target.
"""

from __future__ import annotations

import platform
from functools import cache
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
BF16_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
VNNI_FLAGS = frozenset({"avx512_vnni", "avx_vnni", "amx_int8"})
# The flags a benchmark header and a report name: the ones the formats' speed depends on.
NOTABLE = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "asimddp", "i8mm", "bf16")


@cache
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (x86 ``flags``, ARM ``Features``); empty where /proc/cpuinfo is absent."""
    if not CPUINFO.exists():
        return frozenset()
    for line in CPUINFO.read_text().splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return frozenset(value.split())
    return frozenset()


def cpu_model() -> str:
    if CPUINFO.exists():
        for line in CPUINFO.read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    return platform.processor() or platform.machine()


def profile_for(flags: frozenset[str], machine: str | None = None) -> str:
    """The CPU target profile these flags match."""
    arch = (machine or platform.machine()).lower()
    if arch in ("aarch64", "arm64"):
        return "arm64"
    if flags & BF16_FLAGS:
        return "x86-amx"
    return "x86-vnni" if flags & VNNI_FLAGS else "x86-avx2"


def machine_profile() -> str:
    return profile_for(cpu_flags())


def has_bf16(flags: frozenset[str] | None = None) -> bool:
    return bool((cpu_flags() if flags is None else flags) & BF16_FLAGS)


def notable_flags(flags: frozenset[str] | None = None) -> list[str]:
    have = cpu_flags() if flags is None else flags
    return [f for f in NOTABLE if f in have]
