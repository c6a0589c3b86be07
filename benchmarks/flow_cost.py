"""What the compress flow itself costs: wall time, per-step time, and the share that is not compute.

Why a scratch registry: the flow is idempotent (an identical, already published source version
is reported, not recomputed), so against the workspace's registry, where the demo has published,
both runs would take the short path. A throwaway local ``mlflow server`` holding only a copy of
the source model makes the first run a real first compression and the second run the re-run with
nothing changed, and leaves the user's registry untouched. It is the same kind of server as the
workspace's (sqlite + local artifacts), so registry I/O costs what it costs locally.

Share of orchestration and registry I/O = (Prefect start-up + flow wall time - compute) / (Prefect
start-up + flow wall time), where compute is the same steps run directly (benchmarks.library_run)
in the same process.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import mlflow
import psutil
from prefect import flow

from benchmarks.subjects import Subject
from edgeslim.cli import _run_flow
from edgeslim.config import Params
from edgeslim.registry import mlflow_registry as reg
from edgeslim.registry.server import LocalServer, start_server
from edgeslim.registry.tracking import experiment_id
from flows.compress import compress_flow

T = TypeVar("T")
FREE_PORT = 0  # start_server picks a free port
COPY_TAG = "edgeslim.benchmark.copy_of"
SETTLE_WINDOW_S = 1.0
SETTLE_CPU_SHARE = 0.05  # of one core: below this the server's process tree counts as idle


@dataclass(frozen=True)
class FlowRun:
    wall_s: float
    report_path: Path
    report: dict


@flow(name="edgeslim-benchmark-noop")
def _noop_flow() -> None:
    """Nothing: the first flow run of a process pays Prefect's start-up (ephemeral API server)."""


def prefect_startup_s() -> float:
    start = time.perf_counter()
    _noop_flow()
    return time.perf_counter() - start


def _tree_cpu_s(root: psutil.Process) -> float:
    total = 0.0
    for proc in (root, *root.children(recursive=True)):
        try:
            times = proc.cpu_times()
        except psutil.Error:  # a worker that exited meanwhile
            continue
        total += times.user + times.system
    return total


def settle(server_pid: int, timeout_s: float) -> float:
    """Wait until the server's process tree stops using CPU; return the seconds waited.

    Why: ``mlflow server`` answers /health while its job consumers are still starting, and keeps
    both cores busy for about ten more seconds (measured); anything timed meanwhile (Prefect's
    start-up, the direct steps, a flow run) would be slowed by the benchmark's own server.
    """
    root = psutil.Process(server_pid)
    start = time.perf_counter()
    while time.perf_counter() - start < timeout_s:
        before = _tree_cpu_s(root)
        time.sleep(SETTLE_WINDOW_S)
        if _tree_cpu_s(root) - before < SETTLE_CPU_SHARE * SETTLE_WINDOW_S:
            break
    return time.perf_counter() - start


@dataclass
class Quietly:
    """Runs each measured segment only once the scratch server is idle, and keeps the waits."""

    server_pid: int
    timeout_s: float
    waits_s: list[float] = field(default_factory=list)

    def __call__(self, fn: Callable[..., T], *args: object) -> T:
        self.waits_s.append(settle(self.server_pid, self.timeout_s))
        return fn(*args)


@contextmanager
def preserved(path: Path) -> Iterator[None]:
    """Put ``path`` back as it was: the flow rewrites the workspace's latest/report.json (DVC's metrics
    file), and a benchmark's scratch run must not replace the user's latest report."""
    saved = path.read_bytes() if path.exists() else None
    try:
        yield
    finally:
        if saved is None:
            path.unlink(missing_ok=True)
        else:
            path.write_bytes(saved)


def scratch_registry(p: Params, source: Subject, root: Path) -> tuple[LocalServer, str]:
    """Start a throwaway local server under ``root`` holding ``source`` as NAME@<source alias>."""
    server = start_server(root, p.mlflow.host, FREE_PORT, p.mlflow.startup_timeout_s, detach=True)
    client = reg.connect(server.url)
    mlflow.set_experiment(experiment_id=experiment_id(client, p.mlflow.experiment))
    with mlflow.start_run(run_name="benchmark: copy of the source model"):
        model_uri = reg.log_weights_model(source.weights)
    name = source.origin["name"]
    reg.register(
        client, model_uri, name, {COPY_TAG: f"{source.origin['registry']} {name}:{source.origin['version']}"}, p.mlflow.source_alias
    )
    return server, f"{name}@{p.mlflow.source_alias}"


def run_compress(tracking_uri: str, model: str, params_file: Path, overrides: tuple[str, ...]) -> FlowRun:
    """One real compress flow run on Prefect; its wall time and the report.json it wrote."""
    start = time.perf_counter()
    out = _run_flow(compress_flow, model=model, tracking_uri=tracking_uri, params_file=str(params_file), overrides=list(overrides))
    wall = time.perf_counter() - start
    path = Path(out["report"])
    return FlowRun(wall, path, json.loads(path.read_text()))


def breakdown(first: FlowRun, prefect_start_s: float, direct_s: dict[str, float]) -> dict:
    """Split the first run's wall time into compute, per-step task overhead, registry steps, the rest.

    Steps with a direct counterpart are compute plus Prefect task overhead (flow - direct); steps
    without one (pull, publish) are MLflow I/O under Prefect; time outside every step is the
    flow's own bookkeeping (flow run creation, finding a published twin, Prefect artifacts).
    """
    steps = first.report["timings_s"]
    compute = {s: direct_s[s] for s in steps if s in direct_s}
    total = prefect_start_s + first.wall_s
    compute_s = sum(compute.values())
    per_step = {
        s: {
            "flow_s": round(steps[s], 3),
            "direct_s": round(direct_s[s], 3) if s in direct_s else None,
            "overhead_s": round(steps[s] - direct_s[s], 3) if s in direct_s else round(steps[s], 3),
        }
        for s in steps
    }
    parts = {
        "compute_s": compute_s,
        "prefect_task_overhead_s": sum(steps[s] - direct_s[s] for s in compute),
        "registry_steps_s": sum(steps[s] for s in steps if s not in direct_s),
        "flow_outside_steps_s": first.wall_s - sum(steps.values()),
        "prefect_startup_s": prefect_start_s,
    }
    return {
        "total_s": total,
        "steps": per_step,
        **{k: round(v, 3) for k, v in parts.items()},
        "orchestration_and_registry_s": round(total - compute_s, 3),
        "orchestration_and_registry_share": (total - compute_s) / total,
        "compute_share": compute_s / total,
    }
